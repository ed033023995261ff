"""Optuna pruning from Lightning epochs, in the `pytorch_lightning` namespace that convtune uses.

optuna-integration's callback is written against `lightning.pytorch`; mixing the two namespaces
breaks Lightning's callback checks, so this small equivalent reports on the same hook.

A report's step is the number of epochs trained so far (1 after the first epoch), so a pruner's
resources are epochs: successive halving with `min_resource: 1, reduction_factor: 3` judges trials
after epochs 1 and 3, and Hyperband's `max_resource` is `trainer.max_epochs`. After the last epoch
the trial is only reported: pruning it then would save no training and throw its result away.
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
        if not math.isfinite(score):
            return
        epochs = trainer.current_epoch + 1
        self.trial.report(score, step=epochs)
        last_epoch = trainer.max_epochs is not None and 0 < trainer.max_epochs <= epochs
        if last_epoch:
            return
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {epochs} of {trainer.max_epochs} with {self.monitor}={score:.4f}."
            )
