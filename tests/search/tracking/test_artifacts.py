"""`search.tracking.artifacts`: the pictures every trial leaves, from its best validation epoch."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.training import RunParts, build_run, create_trainer
from search.tracking.artifacts import draw_pictures
from tests.helpers.pictures import TRIAL_PICTURES, assert_png
from tests.helpers.tiny_runs import trained_convnet


@pytest.fixture(scope="module")
def trained() -> tuple[RunParts, RunConfig]:
    return trained_convnet()


def test_pictures_of_a_trained_module(trained: tuple, tmp_path: Path) -> None:
    parts, _ = trained
    datamodule = parts.datamodule
    paths = draw_pictures(
        parts.module.eval(), datamodule.val_images, datamodule.val_labels, datamodule.class_names, tmp_path
    )
    assert {p.name for p in paths} == TRIAL_PICTURES - {"architecture.png"}
    for path in paths:
        assert_png(path)


def test_pictures_reuse_the_best_epochs_validation_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The confusion matrix comes from the best validation epoch, with no second pass over the images."""
    import search.tracking.artifacts as artifacts_module

    config = RunConfig.model_validate(
        {"data": {"dataset": "digits"}, "model": {"channels": [8, 16]}, "trainer": {"max_epochs": 2}}
    )
    parts = build_run(config)
    best = BestWeights("val/acc", "max")
    create_trainer(config.trainer, callbacks=[best]).fit(parts.module, datamodule=parts.datamodule)
    predicted, confidence = best.best_predictions
    assert bool(((confidence > 0) & (confidence <= 1)).all())
    labels = parts.datamodule.val_labels
    assert len(predicted) == len(labels)
    assert float((predicted == labels).float().mean()) == pytest.approx(best.best_value, abs=1e-6)

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("predict() ran again")

    monkeypatch.setattr(artifacts_module, "predict", no_second_pass)
    with tempfile.TemporaryDirectory() as folder:
        artifacts_module.write_pictures(parts, config, best, Path(folder))
        assert (Path(folder) / "confusion_matrix.png").stat().st_size > 0
