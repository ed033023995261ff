"""Architecture tables: one `LayerInfo` row per layer (output shape, receptive field, parameters,
multiply-adds), the receptive-field arithmetic the rows carry, and the table as printable strings.

The rows come from `lightning_modules.models.shapes.architecture_table` (a `convnet`, by arithmetic)
or `lightning_modules.models.tracing.traced_table` (any network, by hooks on a forward pass); which
one a config gets is decided by `lightning_modules.models.registry.layer_table`. No torch here.

The receptive field of a layer is the side, in input pixels, of the input window that one of its
outputs sees (padding included); the jump is the distance in input pixels between two neighbouring
outputs (the product of the strides so far). Dense layers and global pooling see the whole map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
class ReceptiveField:
    """Receptive field and jump along height and width, in input pixels."""

    rf: tuple[float, float] = (1, 1)
    jump: tuple[float, float] = (1, 1)

    def window(self, kernel: tuple[float, float], stride: tuple[float, float]) -> ReceptiveField:
        rf = (self.rf[0] + (kernel[0] - 1) * self.jump[0], self.rf[1] + (kernel[1] - 1) * self.jump[1])
        return ReceptiveField(rf, (self.jump[0] * stride[0], self.jump[1] * stride[1]))

    def whole(self, height: int, width: int) -> ReceptiveField:
        """The field of an output that sees the whole `height x width` map (dense, global pool)."""
        return self.window((height, width), (1, 1))

    @property
    def size(self) -> int:
        return math.ceil(max(self.rf) - 1e-6)

    @property
    def step(self) -> float:
        jump = max(self.jump)
        return int(jump) if float(jump).is_integer() else jump

    def columns(self) -> dict[str, float]:
        """The `receptive_field` and `jump` of a `LayerInfo` whose outputs see this field."""
        return {"receptive_field": self.size, "jump": self.step}


def check_dims(in_channels: int, image_size: int | Sequence[int], num_classes: int = 1) -> tuple[int, int]:
    """Validate the data-dependent sizes of a network; returns `image_size` as `(height, width)`."""
    for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an int >= 1, but got {label}={value!r}.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            f"image_size must be two ints >= 1 (height, width), but got image_size={image_size!r}."
        )
    return size[0], size[1]


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """A kernel, stride or padding as `(height, width)`."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def collapse(values: tuple[int, int]) -> int | tuple[int, int]:
    """One number where both entries of `values` are equal, else the pair: how a table shows them."""
    return values[0] if values[0] == values[1] else values


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
