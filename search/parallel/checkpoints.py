"""Where a study's trial checkpoints live, and when they go away.

One file per MLflow trial run, `.convtune/checkpoints/<study>/<run id>.ckpt` under the folder the
study runs from: every worker of the study on this machine finds it there. Beside it,
`<run id>.epochs` holds its epoch count as text, so `convtune status` lists resumable trials without
importing torch to open the checkpoint. When tracking goes to a
team server (an HTTP tracking URI, a study spanning machines), each saved epoch is also uploaded to
the run's artifacts (`checkpoint/<run id>.ckpt`, replaced every epoch), so that a retry on another
machine downloads it.

Retention: the file is overwritten every epoch (only the latest is kept) and removed when its trial
completes, is pruned, fails with an error, or dies with no retry left (`search.parallel.heartbeat`). A trial
interrupted or killed keeps it until its retry finishes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from search.study import optuna_adapter as adapter
from search.tracking import vocabulary as v

if TYPE_CHECKING:  # `convtune status` reads checkpoints' epochs without importing MLflow or torch
    from search.tracking.tracker import Tracker

CHECKPOINT_ROOT = Path(".convtune/checkpoints")
SUFFIX = ".ckpt"
EPOCHS_SUFFIX = ".epochs"  # beside each checkpoint: how many epochs it holds, as text

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointStore:
    """The checkpoints of one study: a local folder, and the runs' artifacts on a team server."""

    folder: Path
    tracker: Tracker | None = None
    remote: bool = False

    @classmethod
    def for_study(
        cls, study_name: str, tracker: Tracker | None, root: Path = CHECKPOINT_ROOT
    ) -> CheckpointStore:
        remote = tracker is not None and tracker.settings.is_server
        return cls((root / study_name).resolve(), tracker, remote)

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}{SUFFIX}"

    def saved(self, run_id: str, path: Path, epochs: int | None = None) -> None:
        """After each epoch's save: its epoch count beside it, and the file to the run's artifacts
        too when tracking is remote."""
        if epochs is not None:
            marker = self.folder / f"{run_id}{EPOCHS_SUFFIX}"
            partial = marker.with_name(f".{marker.name}.{os.getpid()}.partial")
            partial.write_text(str(epochs))
            os.replace(partial, marker)
        if not self.remote or self.tracker is None:
            return
        try:
            self.tracker.upload_checkpoint(run_id, path)
        except Exception as error:  # the server is down: the local file still serves this machine
            _logger.warning("could not upload the checkpoint of run %s: %s", run_id, error)

    def fetch(self, run_id: str) -> Path | None:
        """The run's latest checkpoint on this machine (downloaded from the server if need be)."""
        local = self.path(run_id)
        if local.is_file():
            return local
        if not self.remote or self.tracker is None:
            return None
        try:
            downloaded = self.tracker.download_checkpoint(run_id, local.name, self.folder / ".download")
        except Exception as error:
            _logger.warning("could not download the checkpoint of run %s: %s", run_id, error)
            return None
        if downloaded is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        downloaded.replace(local)
        return local

    def discard(self, run_id: str | None) -> None:
        """Removes the run's checkpoint, here and on the server; never fails the caller."""
        if not run_id:
            return
        self.path(run_id).unlink(missing_ok=True)
        (self.folder / f"{run_id}{EPOCHS_SUFFIX}").unlink(missing_ok=True)
        for partial in self.folder.glob(f".{run_id}*.partial"):  # a write a SIGKILL cut short
            partial.unlink(missing_ok=True)
        if not self.remote or self.tracker is None:
            return
        try:
            self.tracker.delete_checkpoint(run_id)
        except Exception as error:
            _logger.warning("could not delete the checkpoint artifact of run %s: %s", run_id, error)

    def files(self) -> list[Path]:
        """The checkpoints kept on this machine (not the partial files of a save in progress)."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"*{SUFFIX}"))

    def epochs(self, run_id: str) -> int | None:
        """Epochs in the run's checkpoint on this machine, from the count saved beside it."""
        try:
            return int((self.folder / f"{run_id}{EPOCHS_SUFFIX}").read_text())
        except (OSError, ValueError):
            return None


@dataclass
class Resumable:
    """A waiting retry and the checkpoint it will continue from."""

    trial: int
    from_trial: int
    epochs: int
    path: Path


def resumable(study: optuna.Study, store: CheckpointStore) -> list[Resumable]:
    """The waiting retries of `study` that have a checkpoint on this machine."""
    found = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        retry_of, run_id = dead_run(study, trial.user_attrs.get(v.ATTR_RETRY_OF))
        if retry_of is None or run_id is None or not store.path(run_id).is_file():
            continue
        epochs = store.epochs(run_id)
        if epochs is not None:
            found.append(Resumable(trial.number, retry_of, epochs, store.path(run_id)))
    return found


def dead_run(study: optuna.Study, retry_of: object) -> tuple[int | None, str | None]:
    """The failed trial a retry continues and its MLflow run; a retry that died before it opened a
    run of its own leads on to the trial it retried."""
    while isinstance(retry_of, int):
        attrs = adapter.frozen_trial(study, retry_of).user_attrs
        run_id = attrs.get(v.ATTR_RUN_ID)
        if isinstance(run_id, str):
            return retry_of, run_id
        retry_of = attrs.get(v.ATTR_RETRY_OF)
    return None, None
