"""Tiny digits runs, models and images shared by the tests of tracking, inspection and reproduction."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.data import load_dataset
from lightning_modules.training import RunParts, build_run, create_trainer
from search.experiment.spec import validate_experiment
from search.reproduce.retrain import to_inference_model
from search.tracking.model_store import InferenceModel
from tests.conftest import tiny_experiment


def trained_convnet() -> tuple[RunParts, RunConfig]:
    """A convnet trained for one epoch on digits (its best epoch's weights), with its config."""
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 1}))
    config = spec.run_config()
    parts = build_run(config)
    best = BestWeights()
    create_trainer(config.trainer, callbacks=[best]).fit(parts.module, datamodule=parts.datamodule)
    best.restore(parts.module)
    return parts, config


def tiny_run_config(**trainer: object) -> RunConfig:
    """A small convnet on digits, two epochs unless `trainer` says otherwise."""
    return RunConfig.model_validate(
        {
            "data": {"dataset": "digits", "batch_size": 64},
            "model": {"name": "convnet", "channels": [8, 16]},
            "optim": {"name": "adamw", "lr": 3e-3},
            "trainer": {"max_epochs": 2, **trainer},
        }
    )


def untrained_model(tta: list[str]) -> InferenceModel:
    """`tiny_run_config`'s network as built (not trained), as an inference model with `tta`."""
    config = tiny_run_config()
    parts = build_run(config)
    parts.module.eval()
    return to_inference_model(parts, config, {"test": "yes"}).with_tta(tta)


def write_digit_pngs(folder: Path, count: int) -> tuple[list[Path], torch.Tensor, torch.Tensor]:
    """The first `count` digits of the test split as PNG files, with their images and labels."""
    arrays = load_dataset("digits")
    images, labels = arrays.test_images[:count], arrays.test_labels[:count]
    paths = []
    for index in range(count):
        path = folder / f"digit_{index}.png"
        Image.fromarray(images[index, 0].numpy(), mode="L").save(path)
        paths.append(path)
    return paths, images, labels
