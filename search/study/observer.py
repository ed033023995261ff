"""What `tune` tells whoever watches the study: the checks' notes, the trials as they run, how it ended.

`tune` shows nothing itself and imports no display: `convtune tune` passes the terminal's live panel
(`search.cli.tune_display.TuneDisplay`); a caller that passes nothing gets `Unwatched`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial


class TrialFeed(Protocol):
    """One trial's training as it goes (fed by `search.study.trial_progress.TrialProgressCallback`)."""

    def start_trial(self, number: int, epochs: int, batches: int) -> None: ...

    def advance(self) -> None: ...

    def epoch_done(self, status: str) -> None: ...


class StudyWatch(Protocol):
    """Told the study as the view opens (one worker here), then after every trial, or at every poll
    of a worker pool."""

    def update_study(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None: ...


class TrialsWatch(StudyWatch, TrialFeed, Protocol):
    """The view of a study whose trials run in this process: the study, and the running trial."""


@dataclass(frozen=True)
class StudyEnd:
    """How the study ended, for the summary under the live view."""

    study: optuna.Study
    stopped_by: str  # n_trials, timeout, budget, failures (interrupted raises instead)
    failed: int  # trials that failed in this run
    runs_link: str  # the MLflow page that lists the study's runs
    on_server: bool  # the link is the team's tracking server (else `convtune ui` serves it)


class TuneObserver(Protocol):
    """Everything `tune` has to say, in the order it happens."""

    def study_ready(self, notes: Sequence[str], warm_start: str | None) -> None:
        """The checks passed: what loading the data decided, and how a warm start seeded the study."""

    def watch_trials(
        self, study: optuna.Study, n_trials: int, metric: str
    ) -> AbstractContextManager[TrialsWatch]:
        """A live view while one worker runs the trials in this process."""

    def watch_workers(
        self, study: optuna.Study, n_trials: int, metric: str, workers: Sequence[str], epochs: int
    ) -> AbstractContextManager[StudyWatch]:
        """A live view while worker processes (named by their labels) run the trials."""

    def workers_crashed(self, crashed: Sequence[str], log_tail: str) -> None:
        """Workers that ended abnormally, and the end of the last one's log ("" to show none)."""

    def study_finished(self, end: StudyEnd) -> None:
        """The study ended (not interrupted): its best trials, where to compare them."""


class _Blind:
    def update_study(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        pass

    def start_trial(self, number: int, epochs: int, batches: int) -> None:
        pass

    def advance(self) -> None:
        pass

    def epoch_done(self, status: str) -> None:
        pass


class Unwatched:
    """A `TuneObserver` that shows nothing: `tune` called from code (tests, benchmarks)."""

    def study_ready(self, notes: Sequence[str], warm_start: str | None) -> None:
        pass

    @contextlib.contextmanager
    def watch_trials(self, study: optuna.Study, n_trials: int, metric: str) -> Iterator[TrialsWatch]:
        yield _Blind()

    @contextlib.contextmanager
    def watch_workers(
        self, study: optuna.Study, n_trials: int, metric: str, workers: Sequence[str], epochs: int
    ) -> Iterator[StudyWatch]:
        yield _Blind()

    def workers_crashed(self, crashed: Sequence[str], log_tail: str) -> None:
        pass

    def study_finished(self, end: StudyEnd) -> None:
        pass
