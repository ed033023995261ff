"""Lightning callbacks that know nothing of Optuna or MLflow."""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Literal

import pytorch_lightning as pl
import torch


class EpochClock(pl.Callback):
    """Wall clock of one training: from the callback's creation to the first training step (`startup`:
    data, network, trainer) and from there to the end of each training epoch (its validation
    included)."""

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.train_started: float | None = None
        self.epoch_ends: list[float] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.train_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_ends.append(time.perf_counter())

    @property
    def epochs(self) -> int:
        return len(self.epoch_ends)

    @property
    def startup(self) -> float:
        return (self.train_started or time.perf_counter()) - self.created

    @property
    def seconds(self) -> float:
        """Seconds of the epochs that ended (0 before any)."""
        if self.train_started is None or not self.epoch_ends:
            return 0.0
        return self.epoch_ends[-1] - self.train_started


class BestWeights(pl.Callback):
    """Keeps, in memory, the weights, metrics and validation predictions of the best epoch."""

    def __init__(self, monitor: str = "val/acc", mode: Literal["max", "min"] = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', but got mode={mode!r}.")
        self.monitor = monitor
        self.mode = mode
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_predictions: tuple[torch.Tensor, torch.Tensor] | None = None

    def is_better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not self.is_better(value):
            return
        self.best_value = value
        self.best_epoch = trainer.current_epoch
        self.best_metrics = {key: float(v) for key, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        predictions = getattr(pl_module, "val_predictions", None)
        outputs = predictions() if callable(predictions) else None
        self.best_predictions = tuple(t.cpu() for t in outputs) if outputs is not None else None

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on tracking the best epoch: tensors, numbers, lists."""
        if self.best_value is None:
            return {}
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_metrics": dict(self.best_metrics),
            "best_state": self.best_state,
            "best_predictions": list(self.best_predictions) if self.best_predictions is not None else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        self.best_value = float(state_dict["best_value"])
        self.best_epoch = state_dict["best_epoch"]
        self.best_metrics = dict(state_dict["best_metrics"])
        self.best_state = state_dict["best_state"]
        predictions = state_dict["best_predictions"]
        self.best_predictions = (predictions[0], predictions[1]) if predictions else None

    def restore(self, pl_module: pl.LightningModule) -> None:
        """Loads the best epoch's weights back into the module (no-op before any validation)."""
        if self.best_state is not None:
            pl_module.load_state_dict(copy.deepcopy(self.best_state))
