"""`convtune explain`: pictures and the architecture of one model, and two side by side with --compare."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lightning_modules.config import RunConfig
from lightning_modules.training import RunParts
from search.cli.main import main
from search.tracking.model_store import inference_model_from_run
from tests.helpers.pictures import assert_png
from tests.helpers.tiny_runs import trained_convnet


@pytest.fixture(scope="module")
def trained() -> tuple[RunParts, RunConfig]:
    return trained_convnet()


def test_compare_explains_both_and_writes_the_comparison(
    saved_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(saved_model)
    assert main(["explain", model, "digit.png", "--out", "out", "--compare", model]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "prediction:" in printed and "side by side" in printed
    assert (Path("out") / "architecture.md").is_file() and (Path("out") / "comparison.md").is_file()
    assert (Path("out") / "compare" / "gradcam.png").is_file()


def test_a_missing_model_is_one_line_before_any_folder_is_made(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "missing.pt", "digit.png"]) == 1
    assert "model missing.pt not found" in capsys.readouterr().err
    assert not (workdir / "explain-digit").exists()


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
