"""Epoch checkpoints: written whole or not at all, readable without pickles, random state restored."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.config import RunConfig
from lightning_modules.resume import CheckpointError, EpochCheckpoint, RngState, read_checkpoint
from lightning_modules.training import build_run, create_trainer


def test_every_epoch_is_saved_and_reads_back(tmp_path: Path) -> None:
    config = RunConfig.model_validate(
        {"data": {"dataset": "digits"}, "model": {"channels": [4]}, "trainer": {"max_epochs": 2}}
    )
    saved: list[int] = []
    path = tmp_path / "run" / "last.ckpt"
    parts = build_run(config)
    callbacks = [EpochCheckpoint(path, after_save=lambda _, epochs: saved.append(epochs)), RngState()]
    create_trainer(config.trainer, callbacks=callbacks, accelerator="cpu").fit(
        parts.module, datamodule=parts.datamodule
    )
    assert saved == [1, 2] and [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no partial file
    checkpoint = read_checkpoint(path)
    assert checkpoint["epoch"] == 1 and "RngState" in checkpoint["callbacks"]


def test_what_is_no_checkpoint_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "cut.ckpt").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(CheckpointError, match=r"cut\.ckpt cannot be read"):
        read_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="is no Lightning training checkpoint"):
        read_checkpoint(tmp_path / "weights.pt")


def test_random_state_is_put_back_before_the_first_resumed_epoch() -> None:
    saver = RngState()
    state = saver.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restorer = RngState()
    restorer.load_state_dict(state)
    restorer.on_train_epoch_start(None, None)  # type: ignore[arg-type]
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and restorer.pending is None
