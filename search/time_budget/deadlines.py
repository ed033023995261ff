"""Deadlines at run time for `tune --budget`: the search's share of the budget, and the reproduction's.

The search's share moves while it runs (each finished trial re-estimates what the reproduction will
need), so it lives in a small JSON file that the `tune` process rewrites and every worker process
reads: `SearchClock`. Wall-clock times (`time.time()`), since several processes compare them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
from optuna.trial import TrialState

READ_EVERY_SECONDS = 0.5
SEARCH_ENDED = "the search's share of the time budget ran out"


class SearchClock:
    """`claim_until`: no trial starts after it; `search_end`: a trial still training then is pruned."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._times = (float("inf"), float("inf"))
        self._read_at = 0.0

    def set(self, claim_until: float, search_end: float) -> None:
        """Rewrites the file at once (write a sibling, then rename), so a reader never sees half of it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"claim_until": claim_until, "search_end": search_end}))
        os.replace(partial, self.path)
        self._times, self._read_at = (claim_until, search_end), time.monotonic()

    def times(self) -> tuple[float, float]:
        """(claim_until, search_end), read again at most every `READ_EVERY_SECONDS`; an unreadable file
        keeps the last times read."""
        if time.monotonic() - self._read_at >= READ_EVERY_SECONDS:
            self._read_at = time.monotonic()
            try:
                data = json.loads(self.path.read_text())
                self._times = (float(data["claim_until"]), float(data["search_end"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return self._times

    def out_of_time(self) -> bool:
        return time.time() >= self.times()[0]

    def past_end(self) -> bool:
        return time.time() >= self.times()[1]


class SearchEndCallback(pl.Callback):
    """Prunes the trial at the next batch once the search's share has run out: the sampler keeps what
    it reported, and the reproduction's share is not eaten into. Not while the study holds no COMPLETE
    trial: the reproduction needs one, so the first to complete may overrun the search's share."""

    def __init__(self, clock: SearchClock, trial: optuna.Trial) -> None:
        self.clock = clock
        self.trial = trial
        self._result_seen = False
        self._looked_at = 0.0

    def _check(self) -> None:
        if self.clock.past_end() and self._study_has_result():
            raise optuna.TrialPruned(SEARCH_ENDED)

    def _study_has_result(self) -> bool:
        """Whether the study holds a COMPLETE trial; asks the storage at most once a second."""
        if not self._result_seen and time.monotonic() - self._looked_at >= 1.0:
            self._looked_at = time.monotonic()
            complete = self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._result_seen = bool(complete)
        return self._result_seen

    def on_train_batch_end(self, *args: Any) -> None:
        self._check()

    def on_validation_batch_end(self, *args: Any) -> None:
        self._check()


class TrainingDeadline(pl.Callback):
    """Stops training at a wall-clock deadline: after the current batch Lightning validates the partial
    epoch and ends `fit`, so the best epoch's weights so far are what the caller restores."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.stopped_in_epoch: int | None = None
        self.max_epochs: int | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.should_stop or time.time() < self.deadline:
            return
        trainer.should_stop = True
        self.stopped_in_epoch = trainer.current_epoch + 1
        self.max_epochs = trainer.max_epochs

    def note(self) -> str | None:
        if self.stopped_in_epoch is None:
            return None
        return (
            f"training stopped at the time budget's deadline in epoch {self.stopped_in_epoch} of "
            f"{self.max_epochs}; the best epoch's weights so far are kept."
        )
