"""Optuna pruning from Lightning epochs, in the `pytorch_lightning` namespace that convtune uses.

optuna-integration's callback is written against `lightning.pytorch`; mixing the two namespaces
breaks Lightning's callback checks, so this small equivalent reports on the same hook.
"""

from __future__ import annotations

import math

import optuna
import pytorch_lightning as pl


class PruningCallback(pl.Callback):
    """Reports the monitored metric after each epoch and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        score = float(value)
        epoch = trainer.current_epoch
        if not math.isfinite(score):
            return
        self.trial.report(score, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} with {self.monitor}={score:.4f}.")
