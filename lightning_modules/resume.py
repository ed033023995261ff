"""Epoch checkpoints that a later process can continue from, with Lightning's own resume.

`EpochCheckpoint` saves, at the end of every training epoch, Lightning's full checkpoint (model,
optimizers, schedulers, the loops' progress, every callback's `state_dict`) to one file, written to
a temporary name and renamed over the previous one: a reader sees the last finished epoch or the
one before it, never half a file. `RngState` adds the random generators (torch, CUDA, numpy,
`random`) as tensors and lists, and puts them back before the first resumed epoch, so that a run
continued with `Trainer.fit(ckpt_path=..., weights_only=True)` trains the same as one never stopped.

Nothing here pickles: every value is a tensor, number, string, list or dict, so the file loads with
`torch.load(weights_only=True)` (`read_checkpoint`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

SavedHook = Callable[[Path, int], None]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a checkpoint)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded with `weights_only=True` on the CPU; `CheckpointError` otherwise."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, wrong file: all unusable alike
        raise CheckpointError(f"{path} cannot be read: {type(error).__name__}: {error}"[:300]) from None
    if not isinstance(loaded, dict) or "loops" not in loaded or "state_dict" not in loaded:
        raise CheckpointError(f"{path} is no Lightning training checkpoint.")
    return loaded


def atomic_save(trainer: pl.Trainer, path: Path) -> None:
    """`trainer.save_checkpoint` to a temporary file next to `path`, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        trainer.save_checkpoint(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class EpochCheckpoint(pl.Callback):
    """Saves the run to `path` after every training epoch, then calls `after_save(path, epochs)`.

    Place it after the callbacks that may end the trial at epoch end (pruning): a pruned epoch is
    not worth saving. `epochs` counts finished epochs (1 after the first).
    """

    def __init__(self, path: Path, after_save: SavedHook | None = None) -> None:
        self.path = Path(path)
        self.after_save = after_save

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        atomic_save(trainer, self.path)
        if self.after_save is not None:
            self.after_save(self.path, trainer.current_epoch + 1)


class RngState(pl.Callback):
    """The random generators' states in every checkpoint; restored before the first resumed epoch."""

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state()
        python_state = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "numpy_pos": int(numpy_state[2]),
            "numpy_gauss": [int(numpy_state[3]), float(numpy_state[4])],
            "python": torch.tensor(python_state[1], dtype=torch.int64),
            "python_version": int(python_state[0]),
            "python_gauss": [] if python_state[2] is None else [float(python_state[2])],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = dict(state_dict)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pending is None:
            return
        state, self.pending = self.pending, None
        torch.set_rng_state(state["torch"])
        keys = state["numpy"].numpy().astype(np.uint32)
        has_gauss, gauss = state["numpy_gauss"]
        np.random.set_state(("MT19937", keys, state["numpy_pos"], int(has_gauss), float(gauss)))
        python_gauss = state["python_gauss"][0] if state["python_gauss"] else None
        words = tuple(int(x) for x in state["python"].tolist())
        random.setstate((state["python_version"], words, python_gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
