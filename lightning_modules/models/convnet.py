"""`convnet`: a plain stack of conv blocks and a dense head, built from a `ConvNetConfig`.

Block `i` is `convs_per_block` times `conv -> [batch norm] -> activation`, then `[pool]` and
`[Dropout2d]`; only its first conv has the block's stride. With `separable`, each conv but the
network's first is `dw<j>` (depthwise, the kernel and stride) then `conv<j>` (pointwise 1x1).
Padding follows the rule documented in `lightning_modules.models.shapes` (`same` with stride > 1 pads
`(k - 1) // 2`, giving `ceil(size / stride)` for odd kernels). The head is `[global average pool]
-> flatten -> (linear -> activation -> [dropout]) per hidden size -> linear`. Module names match
the rows of `architecture_table`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.freezing import apply_freeze
from lightning_modules.models.registry import register_model
from lightning_modules.models.shapes import architecture_table, torch_padding
from lightning_modules.models.weights import WeightsResolver, load_weights

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
# gain used by Kaiming init; activations torch has no gain for are close enough to relu
_INIT_NONLINEARITY = {"sigmoid": "sigmoid", "tanh": "tanh", "leaky_relu": "leaky_relu"}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for a config activation name."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, but got activation={name!r}.")
    return _ACTIVATIONS[name]()


class ConvNet(nn.Module):
    """Conv blocks (`self.blocks`, one `nn.Sequential` each) followed by a dense head (`self.head`)."""

    def __init__(
        self, config: ConvNetConfig, *, in_channels: int, num_classes: int, image_size: tuple[int, int]
    ) -> None:
        super().__init__()
        rows = architecture_table(config, in_channels, image_size, num_classes)  # raises if infeasible
        self.config = config
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = tuple(image_size)
        channels = [in_channels, *config.channels]
        self.blocks = nn.ModuleList(
            _block(config, index, channels[index]) for index in range(len(config.channels))
        )
        flatten = next(row for row in rows if row.kind == "flatten")
        self.head = _head(config, flatten.out_shape[0], num_classes)
        self.reset_parameters()

    @property
    def backbone(self) -> nn.ModuleList:
        """The feature extractor (the conv blocks), for freezing and per-group learning rates."""
        return self.blocks

    def reset_parameters(self) -> None:
        """Kaiming init of convs and hidden layers, small normal init of the classifier."""
        nonlinearity = _INIT_NONLINEARITY.get(self.config.activation, "relu")
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                mode = "fan_out" if isinstance(module, nn.Conv2d) else "fan_in"
                nn.init.kaiming_normal_(module.weight, a=0.01, mode=mode, nonlinearity=nonlinearity)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.head.fc.weight, std=0.01)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last conv block."""
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _block(config: ConvNetConfig, index: int, in_channels: int) -> nn.Sequential:
    out_channels = config.channels[index]
    kernel = config.per_layer("kernel_size")[index]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for conv in range(config.convs_per_block):
        stride = config.per_layer("stride")[index] if conv == 0 else 1
        padding = torch_padding(config.per_layer("padding")[index], kernel, stride)
        channels = in_channels if conv == 0 else out_channels
        if config.separable and (index, conv) != (0, 0):
            layers[f"dw{conv}"] = nn.Conv2d(
                channels, channels, kernel, stride=stride, padding=padding, groups=channels, bias=False
            )
            kernel_here, stride, padding = 1, 1, 0
        else:
            kernel_here = kernel
        layers[f"conv{conv}"] = nn.Conv2d(
            channels, out_channels, kernel_here, stride=stride, padding=padding, bias=not config.batch_norm
        )
        if config.batch_norm:
            layers[f"bn{conv}"] = nn.BatchNorm2d(out_channels)
        layers[f"act{conv}"] = make_activation(config.activation)
    pool = config.per_layer("pool")[index]
    if pool != "none":
        pool_type = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        layers["pool"] = pool_type(config.pool_size, stride=config.pool_size)
    if config.dropout > 0:
        layers["drop"] = nn.Dropout2d(config.dropout)
    return nn.Sequential(layers)


def _head(config: ConvNetConfig, features: int, num_classes: int) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if config.global_pool:
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    for index, hidden in enumerate(config.hidden):
        layers[f"hidden{index}"] = nn.Linear(features, hidden)
        layers[f"act{index}"] = make_activation(config.activation)
        if config.head_dropout > 0:
            layers[f"drop{index}"] = nn.Dropout(config.head_dropout)
        features = hidden
    layers["fc"] = nn.Linear(features, num_classes)
    return nn.Sequential(layers)


@register_model("convnet")
def convnet(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    weights_resolver: WeightsResolver | None = None,
    **fields: Any,
) -> ConvNet:
    """A `ConvNet` from `ConvNetConfig` fields (validated; unknown fields are refused), with
    `weights` loaded (a head of another class count is kept fresh) and `freeze` applied."""
    config = ConvNetConfig(**fields)
    model = ConvNet(config, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    if config.weights is not None:
        load_weights(model, config.weights, resolver=weights_resolver)
    apply_freeze(model, config.freeze)
    return model
