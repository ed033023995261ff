from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from lightning_modules.config import ConvNetConfig
from lightning_modules.models import ConvNet, create_model
from lightning_modules.models.convnet import _block
from lightning_modules.shapes import (
    TABLE_COLUMNS,
    InfeasibleArchitecture,
    LayerInfo,
    architecture_table,
    check_feasible,
    count_parameters,
    format_table,
    multiply_adds,
    traced_table,
)


def _torch_shapes(model: nn.Module, in_channels: int, size: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """Output shape of every leaf module, from our own hooks."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
        for name, module in model.named_modules()
        if not list(module.children())
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, *size))
    for handle in handles:
        handle.remove()
    return shapes


def _torch_refuses(config: ConvNetConfig, in_channels: int, size: tuple[int, int]) -> bool:
    """Whether the raw torch blocks (built without our checks) fail on this input."""
    channels = [in_channels, *config.channels]
    blocks = nn.Sequential(*(_block(config, i, channels[i]) for i in range(len(config.channels)))).eval()
    try:
        with torch.no_grad():
            out = blocks(torch.zeros(1, in_channels, *size))
    except RuntimeError:
        return True
    return min(out.shape[-2:]) < 1


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), list(itertools.product([1, 3, 5, 7], [1, 2, 3], ["same", "valid", 1]))
)
def test_table_shapes_match_torch(kernel: int, stride: int, padding: str | int) -> None:
    for pool, convs, size in itertools.product(["max", "avg", "none"], [1, 2], [8, 28, 32]):
        config = ConvNetConfig(
            channels=[3, 5],
            kernel_size=kernel,
            stride=stride,
            padding=padding,
            pool=pool,
            convs_per_block=convs,
        )
        label = f"{config.model_dump()} at {size}x{size}"
        try:
            rows = architecture_table(config, 2, (size, size), num_classes=4)
        except InfeasibleArchitecture as error:
            if "more than half" not in str(error):
                assert _torch_refuses(config, 2, (size, size)), label
            continue
        model = ConvNet(config, in_channels=2, num_classes=4, image_size=(size, size))
        assert {row.name: row.out_shape for row in rows} == _torch_shapes(model, 2, (size, size)), label
        assert sum(row.params for row in rows) == count_parameters(model), label


@pytest.mark.parametrize(
    "fields",
    [
        {"kernel_size": [3, 5], "stride": [1, 2], "padding": ["same", 0], "pool": ["max", "none"]},
        {"kernel_size": 2, "padding": "same"},
        {"kernel_size": 4, "stride": 2, "padding": "same", "pool": "none"},
        {"kernel_size": 4, "stride": 3, "padding": "same", "pool": "avg"},
        {"batch_norm": False, "dropout": 0.2, "hidden": [16, 8], "head_dropout": 0.5, "activation": "gelu"},
        {"global_pool": True, "pool_size": 3, "convs_per_block": 2},
        {"channels": [4, 4, 4, 4], "kernel_size": 1, "padding": 0},
        {
            "separable": True,
            "convs_per_block": 2,
            "kernel_size": [3, 5],
            "stride": [1, 2],
            "batch_norm": False,
        },
        {"separable": True, "kernel_size": 4, "padding": "same", "pool": "none"},
    ],
)
@pytest.mark.parametrize("size", [(8, 8), (28, 28), (32, 20)])
def test_table_matches_torch_and_traced_table(fields: dict, size: tuple[int, int]) -> None:
    config = ConvNetConfig(**{"channels": [4, 6], **fields})
    try:
        rows = architecture_table(config, 3, size, num_classes=5)
    except InfeasibleArchitecture:
        assert _torch_refuses(config, 3, size)
        return
    model = ConvNet(config, in_channels=3, num_classes=5, image_size=size)
    assert {row.name: row.out_shape for row in rows} == _torch_shapes(model, 3, size)
    assert traced_table(model, 3, size) == rows
    assert sum(row.params for row in rows) == count_parameters(model)


def test_same_padding_keeps_the_size_and_rounds_up_with_stride() -> None:
    for kernel, stride, size in itertools.product([1, 2, 3, 4, 5], [1, 2, 3], [7, 8, 28]):
        config = ConvNetConfig(channels=[2], kernel_size=kernel, stride=stride, padding="same", pool="none")
        conv = architecture_table(config, 1, (size, size), 2)[0]
        if stride == 1 or kernel % 2 == 1:
            assert conv.out_shape[1] == -(-size // stride), (kernel, stride, size)


def _rf(rows: list[LayerInfo], name: str) -> int | None:
    return next(row.receptive_field for row in rows if row.name == name)


def test_known_receptive_fields() -> None:
    two_convs = ConvNetConfig(channels=[4], convs_per_block=2, pool="none")
    rows = architecture_table(two_convs, 1, (28, 28), 2)
    assert [_rf(rows, "blocks.0.conv0"), _rf(rows, "blocks.0.conv1")] == [3, 5]
    conv_pool_conv = ConvNetConfig(channels=[4, 4], pool=["max", "none"])
    rows = architecture_table(conv_pool_conv, 1, (28, 28), 2)
    assert [_rf(rows, "blocks.0.conv0"), _rf(rows, "blocks.0.pool"), _rf(rows, "blocks.1.conv0")] == [3, 4, 8]
    assert next(row.jump for row in rows if row.name == "blocks.1.conv0") == 2
    strided = ConvNetConfig(channels=[4, 4], stride=[2, 1], pool="none")
    assert _rf(architecture_table(strided, 1, (28, 28), 2), "blocks.1.conv0") == 7
    # the whole 14x14 map of the last block (rf 8, jump 2) feeds the dense head
    assert _rf(architecture_table(conv_pool_conv, 1, (28, 28), 2), "head.fc") == 8 + 13 * 2


def _empirical_rf(model: ConvNet, size: int) -> int:
    """Extent of the input pixels that move the centre output of the last block."""
    image = torch.randn(1, model.in_channels, size, size, dtype=torch.float64, requires_grad=True)
    features = model.double().eval().features(image)
    centre = features[0, :, features.shape[2] // 2, features.shape[3] // 2].sum()
    centre.backward()
    rows = image.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"channels": [3, 3], "kernel_size": 3, "pool": "avg"},
        {"channels": [3, 3], "kernel_size": [5, 3], "stride": [2, 1], "pool": "none", "convs_per_block": 2},
        {"channels": [2, 2, 2], "kernel_size": 7, "stride": 3, "padding": "valid", "pool": "none"},
        {"channels": [2, 2], "kernel_size": 3, "pool": "avg", "pool_size": 3, "convs_per_block": 2},
        {"channels": [3, 3], "kernel_size": 3, "stride": [1, 2], "pool": "none", "separable": True},
    ],
)
def test_receptive_field_matches_gradients(fields: dict) -> None:
    torch.manual_seed(0)
    config = ConvNetConfig(activation="tanh", batch_norm=False, **fields)
    model = ConvNet(config, in_channels=2, num_classes=2, image_size=(96, 96))
    last = [row for row in architecture_table(config, 2, (96, 96), 2) if row.name.startswith("blocks.")][-1]
    assert _empirical_rf(model, 96) == last.receptive_field


def test_separable_convs_cost_a_fraction_of_plain_ones() -> None:
    plain = ConvNetConfig(channels=[8, 64], kernel_size=3, batch_norm=False)
    rows = architecture_table(plain.model_copy(update={"separable": True}), 1, (28, 28), 10)
    convs = {row.name: (row.kernel, row.out_shape[0], row.params) for row in rows if row.kind == "conv"}
    assert convs == {
        "blocks.0.conv0": (3, 8, 1 * 8 * 9 + 8),  # the network's first conv stays plain
        "blocks.1.dw0": (3, 8, 8 * 9),  # one 3x3 filter per input channel
        "blocks.1.conv0": (1, 64, 8 * 64 + 64),  # then 1x1 to the block's channels
    }
    plain_rows = architecture_table(plain, 1, (28, 28), 10)
    assert sum(r.macs for r in rows) < sum(r.macs for r in plain_rows) / 4


def test_infeasible_pooling_names_the_block() -> None:
    config = ConvNetConfig(channels=[4, 4, 4, 4, 4], pool="max")
    with pytest.raises(InfeasibleArchitecture, match=r"block 3 of 5 \(blocks\.3\.pool\).* 1x1") as error:
        check_feasible(config, 1, (8, 8))
    assert "pool_size=2" in str(error.value) and "fewer pooling blocks" in str(error.value)
    with pytest.raises(InfeasibleArchitecture):
        ConvNet(config, in_channels=1, num_classes=2, image_size=(8, 8))
    with pytest.raises(InfeasibleArchitecture):
        create_model("convnet", in_channels=1, num_classes=2, image_size=(8, 8), channels=[4] * 5)


def test_infeasible_kernel_names_the_layer_and_the_fix() -> None:
    config = ConvNetConfig(channels=[4, 4], kernel_size=7, padding="valid")
    message = r"block 1 of 2 \(blocks\.1\.conv0\): the input there is 1x1, too small for kernel_size=7"
    with pytest.raises(InfeasibleArchitecture, match=message) as error:
        check_feasible(config, 1, (8, 8))
    assert "use padding: same, a smaller kernel_size or stride" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_padding_larger_than_half_the_kernel_is_refused() -> None:
    config = ConvNetConfig(channels=[4], kernel_size=3, padding=2)
    with pytest.raises(InfeasibleArchitecture, match="padding=2 is more than half of kernel_size=3"):
        check_feasible(config, 1, (28, 28))
    assert check_feasible(ConvNetConfig(channels=[4], kernel_size=5, padding=2), 1, (28, 28)) is None


def test_dense_equivalent_of_a_conv() -> None:
    config = ConvNetConfig(channels=[8], kernel_size=3, pool="none", batch_norm=False)
    conv = architecture_table(config, 1, (10, 10), 2)[0]
    assert conv.params == 8 * 9 + 8
    assert conv.dense_params == 100 * 800 + 800


def test_multiply_adds_of_convs_and_linear_layers() -> None:
    config = ConvNetConfig(channels=[8], kernel_size=3, stride=2, pool="none", hidden=[16], batch_norm=False)
    rows = architecture_table(config, 1, (10, 10), 2)
    conv_macs = 8 * 9 * 5 * 5  # each of the 5x5 outputs of 8 filters: 9 multiply-adds
    head_macs = 8 * 5 * 5 * 16 + 16 * 2
    assert rows[0].macs == conv_macs
    assert multiply_adds(config, 1, (10, 10), 2) == conv_macs + head_macs


def test_format_table() -> None:
    config = ConvNetConfig(channels=[4, 8], kernel_size=[3, 4], padding="same", pool=["max", "none"])
    rows = architecture_table(config, 1, (8, 8), 3)
    table = format_table(rows)
    assert table[0] == list(TABLE_COLUMNS) and len(table) == len(rows) + 2
    assert all(isinstance(cell, str) for line in table for cell in line)
    assert table[1][:7] == ["blocks.0.conv0", "conv", "3x3", "1", "1", "4x8x8", "3"]
    assert table[5][4] == "1,2"  # even kernel, same padding: uneven
    assert table[-1][0] == "total" and table[-1][7] == f"{sum(row.params for row in rows):,}"
    assert table[1][9] == f"{4 * 9 * 8 * 8:,}" and table[2][9] == ""  # a conv's multiply-adds; none for bn
    assert table[-1][9] == f"{sum(row.macs for row in rows):,}"


def test_traced_table_of_a_backbone() -> None:
    model = create_model("resnet18", in_channels=3, num_classes=10, image_size=(224, 224))
    rows = traced_table(model, 3, (224, 224))
    conv1 = next(row for row in rows if row.name == "backbone.conv1")
    assert (conv1.kind, conv1.kernel, conv1.stride, conv1.padding, conv1.out_shape) == (
        "conv",
        7,
        2,
        3,
        (64, 112, 112),
    )
    assert _rf(rows, "backbone.layer4.1.conv2") == 435  # the published receptive field of ResNet-18
    assert rows[-1].name == "head.fc" and rows[-1].out_shape == (10,)
    assert sum(row.params for row in rows) == count_parameters(model)
    assert model.training  # modes restored


def test_traced_table_of_a_resized_backbone() -> None:
    model = create_model("mobilenet_v3_small", in_channels=1, num_classes=2, image_size=(8, 8))
    rows = traced_table(model, 1, (8, 8))
    assert rows[0].name == "adapter" and rows[0].out_shape == (3, 32, 32)
    assert rows[-1].out_shape == (2,)


def test_count_parameters_trainable_only() -> None:
    model = ConvNet(ConvNetConfig(channels=[4]), in_channels=1, num_classes=2, image_size=(8, 8))
    total = count_parameters(model)
    model.head.fc.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - model.head.fc.weight.numel()
