"""A live line while a reproduction trains: each training run's epoch and validation metric.

A reproduction's members may train in other processes (`search.reproduce.parallel_members`), so the
line is read where every run writes anyway: its MLflow run, every `interval` seconds, by a thread of
the command's process. What a run has logged is all it shows; nothing is sent between processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from search.reproduce.plan import Plan
from search.tracking.tracker import RunProgress

Show = Callable[[str], None]  # gets the line each time it is read again (None: no watch at all)
ReadProgress = Callable[[str, str], RunProgress]  # (run id, metric) -> what the run has logged

INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class Followed:
    trial: int
    run_id: str
    epochs: int


class TrainingWatch:
    """Follows the runs given to `follow` until they end; a context manager around the training."""

    def __init__(
        self, show: Show | None, read: ReadProgress, metric: str, interval: float | None = None
    ) -> None:
        self.show = show
        self.read = read
        self.metric = metric
        self.interval = INTERVAL_SECONDS if interval is None else interval
        self._followed: list[Followed] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="convtune-training-watch", daemon=True)

    def follow(self, plan: Plan) -> None:
        with self._lock:
            self._followed.append(Followed(plan.trial.number, plan.run_id, plan.config.trainer.max_epochs))

    def line(self) -> str:
        """`trial 33 epoch 18/25 val/acc 0.9432 · trial 62 epoch 12/25 val/acc 0.9332`; a run that
        has ended is dropped."""
        with self._lock:
            followed = list(self._followed)
        parts, ended = [], []
        for run in followed:
            progress = self.read(run.run_id, self.metric)
            if not progress.running:
                ended.append(run)
                continue
            last = "" if progress.last is None else f" {self.metric} {progress.last:.4f}"
            epochs = progress.replanned or run.epochs
            parts.append(f"trial {run.trial} epoch {progress.epochs}/{epochs}{last}")
        with self._lock:
            self._followed = [run for run in self._followed if run not in ended]
        return " · ".join(parts)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                line = self.line()
            except Exception:  # a store that fails to answer once stops neither the training nor the watch
                continue
            if line and self.show is not None:
                self.show(line)

    def __enter__(self) -> TrainingWatch:
        if self.show is not None:
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
