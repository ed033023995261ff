"""Optuna pruning from Lightning epochs, in the `pytorch_lightning` namespace that convtune uses.

optuna-integration's callback is written against `lightning.pytorch`; mixing the two namespaces
breaks Lightning's callback checks, so this small equivalent reports on the same hook.

A report's step is the number of epochs trained so far (1 after the first epoch), so a pruner's
resources are epochs: successive halving with `min_resource: 1, reduction_factor: 3` judges trials
after epochs 1 and 3, and Hyperband's `max_resource` is `trainer.max_epochs`. After the last epoch
the trial is only reported: pruning it then would save no training and throw its result away.

The reported values are the callback's checkpoint state: a retry that resumes from a checkpoint
reports the earlier epochs again (the retry is a new Optuna trial) before it trains the rest.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytorch_lightning as pl


class PruningCallback(pl.Callback):
    """Reports the monitored metric after each epoch and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self.reported: dict[int, float] = {}  # step -> value: what a resumed trial reports again
        self.pending: dict[int, float] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"reported": [[step, value] for step, value in sorted(self.reported.items())]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = {int(step): float(value) for step, value in state_dict.get("reported", [])}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed trial (a new Optuna trial) reports the checkpoint's epochs, each once, in order,
        and the pruner judges each as it would have; then training goes on from the next epoch."""
        pending, self.pending = self.pending, {}
        for step, score in sorted(pending.items()):
            self._report(score, step, trainer.max_epochs)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        score = float(value)
        if not math.isfinite(score):
            return
        self._report(score, trainer.current_epoch + 1, trainer.max_epochs)

    def _report(self, score: float, epochs: int, max_epochs: int | None) -> None:
        self.trial.report(score, step=epochs)
        self.reported[epochs] = score
        last_epoch = max_epochs is not None and 0 < max_epochs <= epochs
        if last_epoch:
            return
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {epochs} of {max_epochs} with {self.monitor}={score:.4f}."
            )
