"""`traced_table`: the rows of an architecture table for any `nn.Module`, from forward hooks.

The `convnet`'s table comes from arithmetic (`lightning_modules.models.shapes`), which needs no torch:
a command that only checks a `convnet` config (`convtune status`, the cost-aware sampler) imports
none. Tracing builds and runs the network, so it lives here with `count_parameters`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_modules.models.layer_table import LayerInfo, ReceptiveField, check_dims, collapse, pair


def _conv_padding(conv: nn.Conv2d) -> int | tuple[int, int]:
    """Padding of a conv as pixels: `(before, after)` when torch's `same` pads unevenly."""
    if conv.padding == "valid":
        return 0
    if conv.padding == "same":
        total = conv.dilation[0] * (conv.kernel_size[0] - 1)
        return collapse((total // 2, total - total // 2))
    return collapse(pair(conv.padding))


def _kind(module: nn.Module, output: torch.Tensor) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "bn"
    if type(module).__module__ == "torch.nn.modules.activation":
        return "act"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and tuple(output.shape[-2:]) == (
        1,
        1,
    ):
        return "gap"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return "pool"
    if isinstance(module, nn.modules.dropout._DropoutNd) or type(module).__name__ == "StochasticDepth":
        return "dropout"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Linear):
        return "linear"
    if getattr(module, "resizes_input", False):
        return "input"
    return "other"


class _Tracer:
    """Follows the receptive field from tensor to tensor while hooks fire in forward order."""

    def __init__(self, model: nn.Module, image_size: tuple[int, int]) -> None:
        self.names = {module: name for name, module in model.named_modules()}
        self.image_size = image_size
        self.states: list[tuple[torch.Tensor, ReceptiveField | None]] = []
        self.seen: set[nn.Module] = set()
        self.rows: list[LayerInfo] = []

    def lookup(self, tensor: torch.Tensor) -> ReceptiveField | None:
        """The field of `tensor`: exact if a hooked layer made it, else the widest same-sized one."""
        for known, field in reversed(self.states):
            if known is tensor:
                return field
        if tensor.dim() == 4:
            alike = [f for t, f in self.states if t.dim() == 4 and t.shape[-2:] == tensor.shape[-2:] and f]
            if alike:
                return max(alike, key=lambda f: max(f.rf))
            if not self.states:
                scale = (self.image_size[0] / tensor.shape[-2], self.image_size[1] / tensor.shape[-1])
                return ReceptiveField(scale, scale)
            return None
        for known, field in reversed(self.states):
            if known.dim() == 4 and field is not None:
                return field.whole(known.shape[-2], known.shape[-1])
        return None

    def field_after(
        self, module: nn.Module, kind: str, inp: torch.Tensor, out: torch.Tensor
    ) -> ReceptiveField | None:
        field = self.lookup(inp)
        if field is None:
            return None
        if kind in ("conv", "pool") and not isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            dilation = pair(getattr(module, "dilation", 1))
            kernel = pair(module.kernel_size)
            effective = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
            stride = pair(module.stride if module.stride is not None else module.kernel_size)
            return field.window(effective, stride)
        if kind in ("gap", "flatten", "linear") and inp.dim() == 4:
            return field.whole(inp.shape[-2], inp.shape[-1])
        if inp.dim() == 4 and out.dim() == 4 and inp.shape[-2:] != out.shape[-2:]:
            # adaptive pooling or resizing: each output pixel spans in/out input pixels
            scale = (inp.shape[-2] / out.shape[-2], inp.shape[-1] / out.shape[-1])
            if kind == "input":  # a resize: one output pixel spans `scale` input pixels
                rf = (field.rf[0] * scale[0], field.rf[1] * scale[1])
                return ReceptiveField(rf, (field.jump[0] * scale[0], field.jump[1] * scale[1]))
            kernel = (max(math.ceil(scale[0]), 1), max(math.ceil(scale[1]), 1))
            return field.window(kernel, scale)
        return field

    def hook(self, module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        if not isinstance(output, torch.Tensor) or isinstance(module, nn.Identity):
            return
        inp = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else output
        kind = _kind(module, output)
        field = self.field_after(module, kind, inp, output)
        self.states.append((output, field))
        first_call = module not in self.seen
        self.seen.add(module)
        params = sum(p.numel() for p in module.parameters(recurse=False)) if first_call else 0
        dense = params
        kernel = stride = padding = None
        macs = module.weight.numel() if isinstance(module, nn.Linear) else 0
        if isinstance(module, nn.Conv2d):
            macs = module.weight.numel() * output.shape[-2] * output.shape[-1]
            dense = inp[0].numel() * output[0].numel() + output[0].numel() if first_call else 0
            padding = _conv_padding(module)
            kernel, stride = collapse(pair(module.kernel_size)), collapse(pair(module.stride))
        elif kind == "pool" and hasattr(module, "kernel_size"):
            kernel = collapse(pair(module.kernel_size))
            stride = collapse(pair(module.stride if module.stride is not None else module.kernel_size))
            padding = collapse(pair(module.padding))
        self.rows.append(
            LayerInfo(
                self.names[module],
                kind,
                kernel,
                stride,
                padding,
                tuple(output.shape[1:]),
                field.size if field else None,
                field.step if field else None,
                params,
                dense,
                macs,
            )
        )


def traced_table(model: nn.Module, in_channels: int, image_size: tuple[int, int]) -> list[LayerInfo]:
    """Rows of the leaf layers of `model`, in forward order, from hooks on a forward of zeros.

    A layer called several times gets a row per call (its parameters counted on the first only).
    The receptive field follows tensors from layer to layer; after an operation that is not a
    module (an addition, a concatenation) it takes the widest field of a tensor of the same size,
    and it is None where it cannot be known.
    """
    height, width = check_dims(in_channels, image_size)
    tracer = _Tracer(model, (height, width))
    leaves = [m for m in model.modules() if not list(m.children()) and m is not model]
    handles = [m.register_forward_hook(tracer.hook) for m in leaves]
    modes = {m: m.training for m in model.modules()}
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    return tracer.rows


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of `model` (only those with `requires_grad` if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
