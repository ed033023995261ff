"""Tests of other rooms left here by the issue-20 split of tracking/inspect/reproduce, for the lead to
move: architecture tables (lightning_modules.models.shapes), `convtune explain` on a saved model and
`convtune ui` (search.cli.commands)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from lightning_modules.config import RunConfig
from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.shapes import architecture_table
from lightning_modules.training import RunParts
from search.cli.main import main
from search.tracking.model_store import inference_model_from_run
from tests.helpers.pictures import assert_png
from tests.helpers.tiny_runs import trained_convnet


@pytest.fixture(scope="module")
def trained() -> tuple[RunParts, RunConfig]:
    return trained_convnet()


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


def test_convtune_explain_on_a_saved_model(
    trained: tuple, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parts, config = trained
    datamodule = parts.datamodule
    model = inference_model_from_run(
        parts.module.model,
        model_config=config.model.model_dump(mode="json"),
        data_config=config.data.model_dump(mode="json"),
        in_channels=datamodule.in_channels,
        image_size=datamodule.image_size,
        class_names=datamodule.class_names,
        mean=datamodule.mean,
        std=datamodule.std,
    )
    model.save(workdir / "model.pt")
    Image.fromarray(datamodule.val_images[0, 0].numpy()).resize((32, 32)).save(workdir / "digit.png")
    assert main(["explain", "model.pt", "digit.png", "--out", "out"]) == 0
    printed = capsys.readouterr().out
    assert "receptive field" in printed and "prediction:" in printed
    for name in ("gradcam.png", "filters.png", "architecture.png", "feature_maps_block1.png"):
        assert_png(workdir / "out" / name)
    assert "blocks.0.conv0" in (workdir / "out" / "architecture.md").read_text()


def test_ui_refuses_a_busy_port_before_starting_anything(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_ui_warns_about_exposure_only_off_loopback() -> None:
    from search.cli.commands.ui import exposure_warning, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    warning = exposure_warning("0.0.0.0", 5000)
    assert "--allowed-hosts" in warning and "basic-auth" in warning
