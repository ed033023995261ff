"""Where a study's trial checkpoints live, and when they go away.

One file per MLflow trial run, `.convtune/checkpoints/<study>/<run id>.ckpt` under the folder the
study runs from: every worker of the study on this machine finds it there. When tracking goes to a
team server (an HTTP tracking URI, a study spanning machines), each saved epoch is also uploaded to
the run's artifacts (`checkpoint/<run id>.ckpt`, replaced every epoch), so that a retry on another
machine downloads it.

Retention: the file is overwritten every epoch (only the latest is kept) and removed when its trial
completes, is pruned, fails with an error, or dies with no retry left (`search.heartbeat`). A trial
interrupted or killed keeps it until its retry finishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from search.tracking.tracker import Tracker

CHECKPOINT_ROOT = Path(".convtune/checkpoints")
SUFFIX = ".ckpt"

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

    def saved(self, run_id: str, path: Path) -> None:
        """After each epoch's save: the file goes to the run's artifacts too when tracking is remote."""
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
