"""Per-layer output shape, receptive field and parameter counts of a `convnet`, by arithmetic alone.

`architecture_table` computes the table of a `convnet` from its config (no forward pass, no torch),
so a search can refuse an infeasible architecture before it builds anything; the rows are
`lightning_modules.models.layer_table.LayerInfo`. Other networks are traced instead
(`lightning_modules.models.tracing`).

Padding rule of the `convnet` (shared with `lightning_modules.models.convnet`):

* `valid` is no padding; an integer `p` pads `p` pixels on every side and must be at most
  `kernel_size // 2`.
* `same` with stride 1 keeps the size exactly: odd kernels pad `k // 2` on every side, even kernels
  pad `k // 2 - 1` before and `k // 2` after (what torch's `padding="same"` does).
* `same` with stride > 1 (which torch refuses) pads `(k - 1) // 2` on every side, so that the output
  is `ceil(size / stride)` for odd kernels (`floor((size - 2) / stride) + 1` for even kernels).
"""

from __future__ import annotations

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.layer_table import LayerInfo, ReceptiveField, check_dims, collapse

FIX_HINT = "use padding: same, a smaller kernel_size or stride, or fewer pooling blocks"


class InfeasibleArchitecture(ValueError):
    """The layers of a config cannot be applied to the given input (a feature map would vanish)."""


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


def _conv_rows(
    config: ConvNetConfig, block: int, shape: tuple[int, int, int], field: ReceptiveField
) -> tuple[list[LayerInfo], tuple[int, int, int], ReceptiveField]:
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
        common = field.columns()
        padded = collapse((before, after))
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
    config: ConvNetConfig, block: int, shape: tuple[int, int, int], field: ReceptiveField
) -> tuple[list[LayerInfo], tuple[int, int, int], ReceptiveField]:
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
        rows.append(LayerInfo(f"blocks.{block}.drop", "dropout", out_shape=shape, **field.columns()))
    return rows, shape, field


def _head_rows(
    config: ConvNetConfig, shape: tuple[int, int, int], field: ReceptiveField, num_classes: int
) -> list[LayerInfo]:
    channels, height, width = shape
    seen = field.whole(height, width).columns()  # dense layers see the whole map
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


def architecture_table(
    config: ConvNetConfig, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> list[LayerInfo]:
    """Every layer of the `convnet` built from `config`, in forward order, named like its module.

    Raises `InfeasibleArchitecture` when a feature map would vanish or torch would refuse a layer.
    """
    height, width = check_dims(in_channels, image_size, num_classes)
    shape, field = (in_channels, height, width), ReceptiveField()
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
