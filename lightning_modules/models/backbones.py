"""Torchvision backbones adapted to the data's channels, image size and class count.

A `BackboneClassifier` is `adapter -> backbone -> head`:

* `adapter` (`InputAdapter`, no parameters) repeats a grayscale channel to RGB (`channel_adapt:
  repeat`) and resizes with bilinear interpolation: to `input_size x input_size` when set, else only
  images smaller than the backbone's minimum (32 pixels; 75 for inception_v3) are scaled up,
  keeping their aspect ratio, so that the last stage still sees at least a 1x1 map.
* `backbone` is the torchvision model with its last classifier layer replaced by `nn.Identity`;
  with `channel_adapt: conv` its first conv takes `in_channels` (pretrained weights are summed over
  the RGB channels for one channel, tiled and rescaled for more).
* `head` (`ClassifierHead`) is a fresh `dropout -> linear` to `num_classes`.

`pretrained: true` loads torchvision's `DEFAULT` ImageNet weights (downloaded into the torch hub
cache when online); `weights: PATH` loads a local state dict, Lightning checkpoint or plain
torchvision state dict with `lightning_modules.models.weights.load_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.models.config import BackboneConfig
from lightning_modules.models.freezing import apply_freeze
from lightning_modules.models.registry import register_model
from lightning_modules.models.weights import WeightsResolver, adapt_input_conv, first_conv_name, load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Normalization = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class BackboneSpec:
    """How to adapt one torchvision classifier: where its last linear layer is, its minimum input."""

    name: str
    classifier: str  # dotted path of the final nn.Linear inside the torchvision model
    min_size: int = 32
    ignored_keys: tuple[str, ...] = ()  # prefixes of pretrained keys the adapted model drops


SPECS: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet18", "fc"),
        BackboneSpec("resnet34", "fc"),
        BackboneSpec("resnet50", "fc"),
        BackboneSpec("vgg11_bn", "classifier.6"),
        BackboneSpec("vgg16", "classifier.6"),
        BackboneSpec("mobilenet_v3_small", "classifier.3"),
        BackboneSpec("efficientnet_b0", "classifier.1"),
        BackboneSpec("inception_v3", "fc", min_size=75, ignored_keys=("AuxLogits.",)),
    )
}


class InputAdapter(nn.Module):
    """Repeats one channel to three (if `repeat`) and resizes to `size` (if set and different)."""

    resizes_input = True

    def __init__(self, repeat: bool, size: tuple[int, int] | None) -> None:
        super().__init__()
        self.repeat = repeat
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if self.repeat:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x

    def extra_repr(self) -> str:
        return f"repeat={self.repeat}, size={self.size}"


class ClassifierHead(nn.Module):
    """`dropout -> linear`: the part that is always new when a backbone meets a new dataset."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(torch.flatten(x, 1)))


class BackboneClassifier(nn.Module):
    """`adapter -> backbone -> head`.

    `normalization` is the (mean, std) per input channel that the pretrained weights expect, or None
    for a backbone trained from scratch.
    """

    def __init__(
        self,
        name: str,
        adapter: InputAdapter,
        backbone: nn.Module,
        head: ClassifierHead,
        normalization: Normalization | None,
    ) -> None:
        super().__init__()
        self.name = name
        self.adapter = adapter
        self.backbone = backbone
        self.head = head
        self.normalization = normalization

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(self.adapter(x))

    def from_torchvision(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Keys of a plain torchvision state dict of this backbone renamed to this model's (the
        classifier's to `head.fc.*`, the rest under `backbone.`); this model's own keys unchanged."""
        if any(key.split(".")[0] in ("backbone", "head") for key in state):
            return state
        spec = SPECS[self.name]
        renamed = {}
        for key, value in state.items():
            if key.startswith(spec.ignored_keys):
                continue
            if key.startswith(spec.classifier + "."):
                renamed["head.fc." + key.removeprefix(spec.classifier + ".")] = value
            else:
                renamed["backbone." + key] = value
        return renamed

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


# ----------------------------------------------------------------------------- building


def pretrained_state_dict(name: str) -> dict[str, Tensor]:
    """torchvision's `DEFAULT` weights of `name` (from the torch hub cache, else downloaded)."""
    import torchvision  # imported here: saves ~1 s at start-up for everything that builds no backbone

    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # URLError, OSError, RuntimeError from a partial file, ...
        raise ValueError(
            f"could not get the pretrained weights {weights} of {name} ({type(error).__name__}: {error}); "
            f"when offline put {weights.url.rsplit('/', 1)[-1]} in {torch.hub.get_dir()}/checkpoints, "
            "or set weights: PATH to a local file, or pretrained: false."
        ) from error


def _torchvision_model(spec: BackboneSpec, pretrained: bool) -> nn.Module:
    import torchvision  # imported here: saves ~1 s at start-up for everything that builds no backbone

    kwargs: dict[str, Any] = {}
    if spec.name == "inception_v3":
        # torchvision's truncated-normal init is slow; use the Kaiming init the other backbones use
        kwargs = {"aux_logits": pretrained, "transform_input": pretrained, "init_weights": False}
    model = torchvision.models.get_model(spec.name, weights=None, **kwargs)
    if pretrained:
        model.load_state_dict(pretrained_state_dict(spec.name))
    if spec.name == "inception_v3":
        model.aux_logits, model.AuxLogits = False, None
        if not pretrained:
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def _set(module: nn.Module, path: str, child: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, name, child)


def _replace_first_conv(model: nn.Module, in_channels: int, pretrained: bool) -> None:
    name = first_conv_name(model)
    old = model.get_submodule(name)
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        groups=1,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        if pretrained:
            new.weight.copy_(adapt_input_conv(old.weight, in_channels))
            if old.bias is not None:
                new.bias.copy_(old.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    _set(model, name, new)


def pretraining_normalization(in_channels: int) -> Normalization:
    """ImageNet's (mean, std) per input channel: RGB for 3 channels, their average repeated else."""
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    return (mean,) * in_channels, (std,) * in_channels


def _target_size(
    spec: BackboneSpec, input_size: int | None, image_size: tuple[int, int]
) -> tuple[int, int] | None:
    """Size the adapter resizes to: `input_size`, or the image scaled up to the minimum, or None."""
    if input_size is not None:
        return (input_size, input_size)
    shortest = min(image_size)
    if shortest >= spec.min_size:
        return None
    scale = spec.min_size / shortest
    return (
        max(spec.min_size, round(image_size[0] * scale)),
        max(spec.min_size, round(image_size[1] * scale)),
    )


def build_backbone(
    config: BackboneConfig,
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    weights_resolver: WeightsResolver | None = None,
) -> BackboneClassifier:
    """The adapted backbone of `config`, with `weights` loaded and `freeze` applied.

    `weights` wins over `pretrained` (nothing is downloaded then). `normalization` is the
    per-input-channel (mean, std) of ImageNet pretraining (`pretraining_normalization`) when
    `pretrained` or `weights` is set (weights are taken to descend from ImageNet training), else None.
    """
    if config.name not in SPECS:
        raise ValueError(f"unknown backbone {config.name!r}; available: {', '.join(SPECS)}.")
    spec = SPECS[config.name]
    pretrained = config.pretrained and config.weights is None
    model = _torchvision_model(spec, pretrained)
    repeat = in_channels != 3 and config.channel_adapt == "repeat"
    if repeat and in_channels != 1:
        raise ValueError(
            f"channel_adapt: repeat turns 1 channel into 3, but got in_channels={in_channels}; "
            "use channel_adapt: conv."
        )
    if in_channels != 3 and not repeat:
        _replace_first_conv(model, in_channels, pretrained)
    classifier = model.get_submodule(spec.classifier)
    _set(model, spec.classifier, nn.Identity())
    head = ClassifierHead(classifier.in_features, num_classes, config.head_dropout)
    adapter = InputAdapter(repeat, _target_size(spec, config.input_size, image_size))
    if in_channels != 3 and getattr(model, "transform_input", False):
        model.transform_input = False  # inception's RGB re-normalization; inputs go in at [-1, 1]
        normalization = ((0.5,) * in_channels, (0.5,) * in_channels)
    else:
        normalization = pretraining_normalization(in_channels)
    known = config.pretrained or config.weights is not None
    result = BackboneClassifier(spec.name, adapter, model, head, normalization if known else None)
    if config.weights is not None:
        load_weights(result, config.weights, resolver=weights_resolver)
    apply_freeze(result, config.freeze)
    return result


def _register(name: str) -> None:
    def factory(
        *,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        weights_resolver: WeightsResolver | None = None,
        **fields: Any,
    ) -> BackboneClassifier:
        config = BackboneConfig(name=name, **fields)
        return build_backbone(
            config,
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            weights_resolver=weights_resolver,
        )

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"torchvision's {name} adapted by `build_backbone` (fields of `BackboneConfig`)."
    register_model(name)(factory)


for _name in SPECS:
    _register(_name)
