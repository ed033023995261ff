"""Resume, not restart: a retried trial continues from its dead predecessor's last finished epoch.

A retry (`search.parallel.heartbeat.TrialGuard.retry`) is a new Optuna trial with the same params and the
user attr `retry_of`. `find_resume` follows it to the failed trial, to that trial's MLflow run, and
to the run's checkpoint (`search.parallel.checkpoints`); the checkpoint must load with `weights_only=True`
and carry convtune's record for the same config, else it is ignored with a warning and the trial
trains from epoch 1. `ResumeRecord` writes that record into every checkpoint, with each epoch's
metrics, so that the resumed run's MLflow history can be completed (epochs the dead worker had
checkpointed but not yet sent to the server).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl

from lightning_modules.config import RunConfig
from lightning_modules.resume import CheckpointError, read_checkpoint
from search.experiment.serialized import training_params
from search.parallel.checkpoints import CheckpointStore, dead_run
from search.tracking import vocabulary as v

FORMAT = 1
RECORD_KEY = "convtune"

_logger = logging.getLogger(__name__)


def config_digest(config: RunConfig) -> str:
    """A fingerprint of what a trial trains: the concrete config, data-loading settings left out."""
    params = training_params(config)
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Resume:
    """A checkpoint a trial continues from."""

    path: Path
    run_id: str
    epochs: int  # finished epochs in the checkpoint: training goes on with epoch `epochs + 1`
    from_trial: int
    history: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch index -> metrics


class ResumeRecord(pl.Callback):
    """convtune's record in every checkpoint: format, config digest, run, trial, epochs; and the
    metrics of every epoch so far (callback state, so a resumed run keeps the earlier ones)."""

    def __init__(self, digest: str, run_id: str, trial_number: int) -> None:
        self.digest = digest
        self.run_id = run_id
        self.trial_number = trial_number
        self.history: dict[int, dict[str, float]] = {}
        self.trained = 0  # epochs this process trained

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.trained += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.history[trainer.current_epoch] = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key in v.EPOCH_METRICS and value.numel() == 1
        }

    def state_dict(self) -> dict[str, Any]:
        return {"history": [[epoch, metrics] for epoch, metrics in sorted(self.history.items())]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {int(epoch): dict(metrics) for epoch, metrics in state_dict.get("history", [])}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RECORD_KEY] = {
            "format": FORMAT,
            "config": self.digest,
            "run_id": self.run_id,
            "trial": self.trial_number,
            "epochs": trainer.current_epoch + 1,
        }


def find_resume(trial: optuna.Trial, store: CheckpointStore, digest: str) -> Resume | None:
    """The checkpoint this retry continues from, or None (no retry, no checkpoint, or unusable)."""
    retry_of, run_id = dead_run(trial.study, trial.user_attrs.get(v.ATTR_RETRY_OF))
    if retry_of is None or run_id is None:
        return None
    path = store.fetch(run_id)
    if path is None:
        return None
    try:
        return _checked(path, run_id, retry_of, digest)
    except CheckpointError as error:
        _logger.warning("trial %s starts from epoch 1: checkpoint ignored, %s", trial.number, error)
        store.discard(run_id)
        return None


def _checked(path: Path, run_id: str, retry_of: int, digest: str) -> Resume:
    checkpoint = read_checkpoint(path)
    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} holds no convtune record of format {FORMAT}.")
    if record.get("config") != digest:
        raise CheckpointError(
            f"{path} is from another config (digest {record.get('config')}, expected {digest})."
        )
    if record.get("run_id") != run_id:
        raise CheckpointError(f"{path} belongs to run {record.get('run_id')}, not {run_id}.")
    history = _callback_state(checkpoint, ResumeRecord).get("history", [])
    epochs = int(record["epochs"])
    return Resume(path, run_id, epochs, retry_of, {int(e): dict(m) for e, m in history})


def _callback_state(checkpoint: dict[str, Any], kind: type[pl.Callback]) -> dict[str, Any]:
    for key, state in checkpoint.get("callbacks", {}).items():
        if key == kind.__qualname__ or key.startswith(f"{kind.__qualname__}{{"):
            return state
    return {}
