"""A saved model (untrained: the commands' own work is tested, not the network's) and an image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_modules.config import DataConfig, RunConfig
from lightning_modules.models.registry import model_from_config
from search.tracking.model_store import inference_model_from_run

CLASSES = [str(digit) for digit in range(10)]


@pytest.fixture
def saved_model(workdir: Path) -> Path:
    """`model.pt` in the working folder: a small convnet for 1x8x8 digits, and `digit.png` beside it."""
    config = RunConfig(data=DataConfig(dataset="digits"), model={"name": "convnet", "channels": [4, 8]})
    network = model_from_config(config.model, in_channels=1, num_classes=len(CLASSES), image_size=(8, 8))
    model = inference_model_from_run(
        network,
        model_config=config.model.model_dump(mode="json"),
        data_config=config.data.model_dump(mode="json"),
        in_channels=1,
        image_size=(8, 8),
        class_names=CLASSES,
        mean=[0.5],
        std=[0.25],
    )
    model.save(workdir / "model.pt")
    pixels = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(pixels).resize((16, 16)).save(workdir / "digit.png")
    return workdir / "model.pt"
