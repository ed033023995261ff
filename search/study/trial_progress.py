"""`TrialProgressCallback`: a Lightning callback that feeds one trial's epochs to a live view.

Kept apart from the observer protocols (`search.study.observer`) so that they import no Lightning.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from search.study.observer import TrialFeed


class TrialProgressCallback(pl.Callback):
    """Feeds one trial's batches and epoch metrics to a `TrialFeed`."""

    def __init__(self, progress: TrialFeed, trial_number: int, metric: str) -> None:
        self.progress = progress
        self.trial_number = trial_number
        self.metric = metric

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = int(trainer.num_training_batches) if trainer.num_training_batches != float("inf") else 1
        self.progress.start_trial(self.trial_number, int(trainer.max_epochs or 1), batches)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.progress.advance()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        shown = (
            f"epoch {trainer.current_epoch + 1} {self.metric} {float(value):.4f}" if value is not None else ""
        )
        self.progress.epoch_done(shown)
