"""Per-layer output shape, receptive field and parameter counts of a CNN.

`architecture_table` computes the table of a `convnet` from its config by arithmetic alone (no
forward pass), so a search can refuse an infeasible architecture before it builds anything.
`traced_table` (in `lightning_modules.tracing`, which imports torch; this module does not) records
the same columns for any `nn.Module` with forward hooks on a zero input.

Padding rule of the `convnet` (shared with `lightning_modules.models.convnet`):

* `valid` is no padding; an integer `p` pads `p` pixels on every side and must be at most
  `kernel_size // 2`.
* `same` with stride 1 keeps the size exactly: odd kernels pad `k // 2` on every side, even kernels
  pad `k // 2 - 1` before and `k // 2` after (what torch's `padding="same"` does).
* `same` with stride > 1 (which torch refuses) pads `(k - 1) // 2` on every side, so that the output
  is `ceil(size / stride)` for odd kernels (`floor((size - 2) / stride) + 1` for even kernels).

The receptive field of a layer is the side, in input pixels, of the input window that one of its
outputs sees (padding included); the jump is the distance in input pixels between two neighbouring
outputs (the product of the strides so far). Dense layers and global pooling see the whole map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lightning_modules.config import ConvNetConfig

if TYPE_CHECKING:
    from torch import nn

FIX_HINT = "use padding: same, a smaller kernel_size or stride, or fewer pooling blocks"
TABLE_COLUMNS = (
    "layer",
    "kind",
    "filter",
    "stride",
    "padding",
    "output",
    "receptive field",
    "params",
    "dense equivalent",
    "multiply-adds",
)
NUMBER_COLUMNS = ("params", "dense equivalent", "multiply-adds")


class InfeasibleArchitecture(ValueError):
    """The layers of a config cannot be applied to the given input (a feature map would vanish)."""


@dataclass(frozen=True)
class LayerInfo:
    """One row of an architecture table.

    `out_shape` is `(C, H, W)` for feature maps and `(F,)` for feature vectors, without the batch.
    `dense_params` is what a fully connected layer from this layer's input to its output would cost
    (for conv layers: the saving of weight sharing); for other layers it equals `params`. `macs` is
    the multiply-accumulates of one image's forward pass through a conv or linear layer.
    """

    name: str
    kind: str
    kernel: int | tuple[int, int] | None = None
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] | None = None
    out_shape: tuple[int, ...] = ()
    receptive_field: int | None = None
    jump: float | None = None
    params: int = 0
    dense_params: int = -1  # -1: the same as `params`
    macs: int = 0

    def __post_init__(self) -> None:
        if self.dense_params < 0:
            object.__setattr__(self, "dense_params", self.params)


@dataclass(frozen=True)
class _Field:
    """Receptive field and jump along height and width, in input pixels."""

    rf: tuple[float, float] = (1, 1)
    jump: tuple[float, float] = (1, 1)

    def window(self, kernel: tuple[float, float], stride: tuple[float, float]) -> _Field:
        rf = (self.rf[0] + (kernel[0] - 1) * self.jump[0], self.rf[1] + (kernel[1] - 1) * self.jump[1])
        return _Field(rf, (self.jump[0] * stride[0], self.jump[1] * stride[1]))

    def whole(self, height: int, width: int) -> _Field:
        """The field of an output that sees the whole `height x width` map (dense, global pool)."""
        return self.window((height, width), (1, 1))

    @property
    def size(self) -> int:
        return math.ceil(max(self.rf) - 1e-6)

    @property
    def step(self) -> float:
        jump = max(self.jump)
        return int(jump) if float(jump).is_integer() else jump


# ----------------------------------------------------------------------------- padding arithmetic


def same_padding(kernel_size: int, stride: int) -> tuple[int, int]:
    """Padding `(before, after)` of `padding: same` on one axis (see the module docstring)."""
    if stride == 1:
        before = (kernel_size - 1) // 2
        return before, kernel_size - 1 - before
    return (kernel_size - 1) // 2, (kernel_size - 1) // 2


def padding_amounts(padding: str | int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Pixels padded `(before, after)` on each spatial axis for a config padding value."""
    if padding == "same":
        return same_padding(kernel_size, stride)
    if padding == "valid":
        return 0, 0
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be 'same', 'valid' or an int >= 0, but got padding={padding!r}.")
    return padding, padding


def torch_padding(padding: str | int, kernel_size: int, stride: int) -> int | str:
    """The `padding` argument of `nn.Conv2d` that implements a config padding value."""
    before, after = padding_amounts(padding, kernel_size, stride)
    return before if before == after else "same"


def conv_output_size(size: int, kernel_size: int, stride: int, pad_total: int) -> int:
    """Output length of a convolution or pooling along one axis (torch's floor rule)."""
    return (size + pad_total - kernel_size) // stride + 1


# ----------------------------------------------------------------------------- architecture table


def _describe_padding(before: int, after: int) -> int | tuple[int, int]:
    return before if before == after else (before, after)


def _conv_rows(
    config: ConvNetConfig, block: int, shape: tuple[int, int, int], field: _Field
) -> tuple[list[LayerInfo], tuple[int, int, int], _Field]:
    """Rows of the convolutions (with batch norm and activation) of one block."""
    out_channels = config.channels[block]
    kernel = config.per_layer("kernel_size")[block]
    padding = config.per_layer("padding")[block]
    depth = len(config.channels)
    rows: list[LayerInfo] = []
    for index in range(config.convs_per_block):
        stride = config.per_layer("stride")[block] if index == 0 else 1
        name = f"blocks.{block}.conv{index}"
        where = f"block {block} of {depth} ({name})"
        if isinstance(padding, int) and not isinstance(padding, bool) and padding > kernel // 2:
            raise InfeasibleArchitecture(
                f"{where}: padding={padding} is more than half of kernel_size={kernel}; "
                f"use padding <= {kernel // 2} or padding: same."
            )
        before, after = padding_amounts(padding, kernel, stride)
        channels, height, width = shape
        out_h = conv_output_size(height, kernel, stride, before + after)
        out_w = conv_output_size(width, kernel, stride, before + after)
        if out_h < 1 or out_w < 1:
            raise InfeasibleArchitecture(
                f"{where}: the input there is {height}x{width}, too small for kernel_size={kernel}, "
                f"stride={stride}, padding={padding!r} (output would be {out_h}x{out_w}); {FIX_HINT}."
            )
        field = field.window((kernel, kernel), (stride, stride))
        common = {"receptive_field": field.size, "jump": field.step}
        padded = _describe_padding(before, after)
        if config.separable and (block, index) != (0, 0):  # depthwise kxk, then pointwise 1x1
            depthwise = (channels, out_h, out_w)
            dw_name = f"blocks.{block}.dw{index}"
            rows.append(
                _conv_row(
                    dw_name, shape, depthwise, kernel, stride, padded, common, depthwise=True, bias=False
                )
            )
            shape, kernel_here, stride, padded = depthwise, 1, 1, 0
        else:
            kernel_here = kernel
        out_shape = (out_channels, out_h, out_w)
        rows.append(
            _conv_row(name, shape, out_shape, kernel_here, stride, padded, common, bias=not config.batch_norm)
        )
        common = {"out_shape": out_shape, **common}
        if config.batch_norm:
            bn_params = 2 * out_channels
            rows.append(LayerInfo(f"blocks.{block}.bn{index}", "bn", **common, params=bn_params))
        rows.append(LayerInfo(f"blocks.{block}.act{index}", "act", **common))
        shape = out_shape
    return rows, shape, field


def _conv_row(
    name: str,
    shape: tuple[int, int, int],
    out_shape: tuple[int, int, int],
    kernel: int,
    stride: int,
    padding: int | tuple[int, int],
    common: dict[str, float],
    *,
    depthwise: bool = False,
    bias: bool,
) -> LayerInfo:
    """The row of one convolution from `shape` to `out_shape` (a depthwise one: a filter per channel)."""
    channels, height, width = shape
    out_channels, out_h, out_w = out_shape
    weights = (1 if depthwise else channels) * out_channels * kernel * kernel
    out_numel = out_channels * out_h * out_w
    return LayerInfo(
        name,
        "conv",
        kernel,
        stride,
        padding,
        out_shape,
        **common,
        params=weights + (out_channels if bias else 0),
        dense_params=channels * height * width * out_numel + out_numel,
        macs=weights * out_h * out_w,
    )


def _pool_rows(
    config: ConvNetConfig, block: int, shape: tuple[int, int, int], field: _Field
) -> tuple[list[LayerInfo], tuple[int, int, int], _Field]:
    """Rows of the pooling and dropout that end one block."""
    rows: list[LayerInfo] = []
    if config.per_layer("pool")[block] != "none":
        size = config.pool_size
        channels, height, width = shape
        name = f"blocks.{block}.pool"
        if height < size or width < size:
            raise InfeasibleArchitecture(
                f"block {block} of {len(config.channels)} ({name}): the input there is {height}x{width}, "
                f"smaller than pool_size={size}; {FIX_HINT}."
            )
        shape = (channels, height // size, width // size)
        field = field.window((size, size), (size, size))
        rows.append(LayerInfo(name, "pool", size, size, 0, shape, field.size, field.step))
    if config.dropout > 0:
        rows.append(LayerInfo(f"blocks.{block}.drop", "dropout", out_shape=shape, **_field_columns(field)))
    return rows, shape, field


def _field_columns(field: _Field) -> dict[str, float]:
    return {"receptive_field": field.size, "jump": field.step}


def _head_rows(
    config: ConvNetConfig, shape: tuple[int, int, int], field: _Field, num_classes: int
) -> list[LayerInfo]:
    channels, height, width = shape
    seen = _field_columns(field.whole(height, width))  # dense layers see the whole map
    rows: list[LayerInfo] = []
    features = channels if config.global_pool else channels * height * width
    if config.global_pool:
        rows.append(LayerInfo("head.pool", "gap", out_shape=(channels, 1, 1), **seen))
    rows.append(LayerInfo("head.flatten", "flatten", out_shape=(features,), **seen))
    for index, hidden in enumerate(config.hidden):
        params = features * hidden + hidden
        macs = features * hidden
        rows.append(
            LayerInfo(f"head.hidden{index}", "linear", out_shape=(hidden,), **seen, params=params, macs=macs)
        )
        rows.append(LayerInfo(f"head.act{index}", "act", out_shape=(hidden,), **seen))
        if config.head_dropout > 0:
            rows.append(LayerInfo(f"head.drop{index}", "dropout", out_shape=(hidden,), **seen))
        features = hidden
    params, macs = features * num_classes + num_classes, features * num_classes
    fc = LayerInfo("head.fc", "linear", out_shape=(num_classes,), **seen, params=params, macs=macs)
    return [*rows, fc]


def _check_input(in_channels: int, image_size: Sequence[int]) -> tuple[int, int]:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an int >= 1, but got in_channels={in_channels!r}.")
    size = tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            f"image_size must be two ints >= 1 (height, width), but got image_size={image_size!r}."
        )
    return size[0], size[1]


def architecture_table(
    config: ConvNetConfig, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> list[LayerInfo]:
    """Every layer of the `convnet` built from `config`, in forward order, named like its module.

    Raises `InfeasibleArchitecture` when a feature map would vanish or torch would refuse a layer.
    """
    height, width = _check_input(in_channels, image_size)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, but got num_classes={num_classes!r}.")
    shape, field = (in_channels, height, width), _Field()
    rows: list[LayerInfo] = []
    for block in range(len(config.channels)):
        conv_rows, shape, field = _conv_rows(config, block, shape, field)
        pool_rows, shape, field = _pool_rows(config, block, shape, field)
        rows += conv_rows + pool_rows
    return rows + _head_rows(config, shape, field, num_classes)


def multiply_adds(
    config: ConvNetConfig, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> int:
    """Multiply-accumulates of one image's forward pass: what a training step costs, roughly."""
    return sum(row.macs for row in architecture_table(config, in_channels, image_size, num_classes))


def check_feasible(config: ConvNetConfig, in_channels: int, image_size: tuple[int, int]) -> None:
    """Raise `InfeasibleArchitecture` (naming the block, the input size there and a fix) if needed."""
    architecture_table(config, in_channels, image_size, num_classes=1)


# ----------------------------------------------------------------------------- traced table


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _short(pair: tuple[int, int]) -> int | tuple[int, int]:
    return pair[0] if pair[0] == pair[1] else pair


# ----------------------------------------------------------------------------- printing


def _format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _format_pair(value: int | tuple[int, int] | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def format_table(rows: Iterable[LayerInfo]) -> list[list[str]]:
    """Plain strings for printing: a header (`TABLE_COLUMNS`), one line per layer, then a total.

    `filter` is `KxK`, `padding` is `before,after` when uneven, `dense equivalent` is shown for
    convolutions (what a dense layer with the same input and output would cost), `multiply-adds`
    (one image's forward pass) for convolutions and linear layers.
    """
    rows = list(rows)
    table = [list(TABLE_COLUMNS)]
    for row in rows:
        kernel = row.kernel if not isinstance(row.kernel, int) else (row.kernel, row.kernel)
        padding = f"{row.padding[0]},{row.padding[1]}" if isinstance(row.padding, tuple) else row.padding
        table.append(
            [
                row.name,
                row.kind,
                _format_pair(kernel),
                _format_pair(row.stride),
                _format_pair(padding),
                _format_shape(row.out_shape),
                "" if row.receptive_field is None else str(row.receptive_field),
                f"{row.params:,}",
                f"{row.dense_params:,}" if row.kind == "conv" else "",
                f"{row.macs:,}" if row.macs else "",
            ]
        )
    total = sum(row.params for row in rows)
    dense = sum(row.dense_params for row in rows)
    macs = sum(row.macs for row in rows)
    table.append(["total", "", "", "", "", "", "", f"{total:,}", f"{dense:,}", f"{macs:,}"])
    return table


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of `model` (only those with `requires_grad` if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def __getattr__(name: str) -> Any:
    """`traced_table` lives in `lightning_modules.tracing` (torch); still importable from here."""
    if name == "traced_table":
        from lightning_modules.tracing import traced_table

        return traced_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
