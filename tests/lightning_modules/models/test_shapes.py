"""The `convnet`'s architecture table by arithmetic: shapes, parameters and receptive fields match
torch (and the traced table), and infeasible layers are named with a fix. That it needs no torch is
tested with the registry (tests/lightning_modules/models/test_registry.py)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.convnet import ConvNet, _block
from lightning_modules.models.layer_table import LayerInfo
from lightning_modules.models.registry import create_model
from lightning_modules.models.shapes import (
    InfeasibleArchitecture,
    architecture_table,
    check_feasible,
    multiply_adds,
    padding_amounts,
    torch_padding,
)
from lightning_modules.models.tracing import count_parameters, traced_table


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


@pytest.mark.parametrize(
    "fields",
    [
        {"channels": [4, 8], "kernel_size": 3, "stride": 1, "padding": "same", "pool": "avg"},
        {"channels": [4, 8, 8], "kernel_size": 5, "stride": 2, "padding": "valid", "pool": "none"},
        {"channels": [4, 8], "kernel_size": 3, "convs_per_block": 2, "padding": 1, "pool": "avg"},
    ],
)
def test_shapes_and_receptive_fields_of_the_table_match_torch(fields: dict) -> None:
    """Output shapes from hooks; receptive field as the support of one output's input gradient."""
    config = ConvNetConfig(name="convnet", activation="relu", batch_norm=False, dropout=0.0, **fields)
    size = (48, 48)
    network = ConvNet(config, in_channels=1, num_classes=3, image_size=size).eval()
    rows = {row.name: row for row in architecture_table(config, 1, size, 3)}
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 0.1)
            nn.init.constant_(module.bias, 0.01)
    modules = dict(network.named_modules())
    for name, row in rows.items():
        if row.kind not in ("conv", "pool"):
            continue
        image = torch.ones(1, 1, *size, requires_grad=True)
        captured: list[torch.Tensor] = []
        hook = modules[name].register_forward_hook(lambda _m, _i, out, keep=captured: keep.append(out))
        network(image)
        hook.remove()
        output = captured[0]
        assert tuple(output.shape[1:]) == row.out_shape, name
        y, x = output.shape[-2] // 2, output.shape[-1] // 2
        output[0, 0, y, x].backward()
        rows_hit = image.grad[0, 0].abs().sum(dim=1).nonzero().flatten()
        cols_hit = image.grad[0, 0].abs().sum(dim=0).nonzero().flatten()
        assert int(rows_hit[-1] - rows_hit[0] + 1) == row.receptive_field, name
        assert int(cols_hit[-1] - cols_hit[0] + 1) == row.receptive_field, name


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


def test_padding_amounts_and_the_torch_argument() -> None:
    assert padding_amounts("same", 4, 1) == (1, 2) and torch_padding("same", 4, 1) == "same"
    assert padding_amounts("same", 3, 2) == (1, 1) and torch_padding("same", 3, 2) == 1
    assert padding_amounts("valid", 5, 1) == (0, 0) and padding_amounts(2, 5, 3) == (2, 2)
    with pytest.raises(ValueError, match="padding must be 'same', 'valid' or an int >= 0"):
        padding_amounts(-1, 3, 1)
