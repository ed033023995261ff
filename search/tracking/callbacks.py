"""Lightning callbacks that write a trial's epochs and data to its MLflow run."""

from __future__ import annotations

import logging

import pytorch_lightning as pl

from search.tracking.datasets import DataSplit
from search.tracking.tracker import Tracker
from search.tracking.vocabulary import EPOCH_METRICS

_logger = logging.getLogger(__name__)


class EpochMetricsCallback(pl.Callback):
    """Queues the epoch's metrics for the run as one batch, step = epoch."""

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.logged_step: int | None = None
        self.validated_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.log_epoch(trainer)

    def log_judged_epoch(self, trainer: pl.Trainer) -> None:
        """The epoch a pruner stopped the trial at, once it was validated. The pruning callback ends
        the epoch before this one runs, and without this the run's curve would stop an epoch short
        of the value the trial was pruned with. A trial stopped mid-epoch (the search's end) logs
        nothing: its metrics are still the previous epoch's."""
        if self.validated_epoch == trainer.current_epoch:
            self.log_epoch(trainer)

    def log_epoch(self, trainer: pl.Trainer) -> None:
        """The current epoch's metrics, once."""
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key in EPOCH_METRICS and value.numel() == 1
        }
        if not metrics or self.logged_step == trainer.current_epoch:
            return
        self.tracker.log_epoch(self.run_id, metrics, step=trainer.current_epoch)
        self.logged_step = trainer.current_epoch


class DataInputsCallback(pl.Callback):
    """Logs the train and validation splits as the run's MLflow dataset inputs when training starts
    (the datamodule is set up by then); a failure is logged, never fatal."""

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self.tracker = tracker
        self.run_id = run_id

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if datamodule is None:
            return
        config = datamodule.data
        source = config.root or f"convtune's default location for {config.dataset}"
        names = tuple(datamodule.class_names)
        splits = [
            DataSplit(
                config.dataset, "train", datamodule.train_images, datamodule.train_labels, source, names
            ),
            DataSplit(config.dataset, "val", datamodule.val_images, datamodule.val_labels, source, names),
        ]
        try:
            self.tracker.log_data(self.run_id, splits)
        except Exception as error:  # the dataset column is a convenience; the trial goes on
            _logger.warning("could not log the data inputs of run %s: %s", self.run_id, error)
