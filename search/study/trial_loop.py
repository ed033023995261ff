"""The loop a worker runs: claim a trial, run the objective, tell Optuna how it ended, repeat.

Claims are counted under the storage's lock, so that workers together never start more than N
trials; a trial this process holds is registered in `search.parallel.open_work`, so that an
unexpected error closes it as FAIL instead of leaving it RUNNING.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from search.parallel import open_work
from search.parallel.memory import release_memory
from search.study import optuna_adapter as adapter
from search.study.storage import StorageHandle
from search.study.study import FINISHED, own_trials
from search.tracking import vocabulary as v

_logger = logging.getLogger(__name__)


def claim_trial(
    study: optuna.Study,
    handle: StorageHandle,
    n_trials: int,
    *,
    reap: Callable[[optuna.Study], object] | None = None,
) -> optuna.Trial | None:
    """A new trial (or a waiting retry) while the study has fewer than N finished or running trials.

    `reap` runs first under the same lock: it fails the trials of dead workers (and enqueues their
    retries), so that they neither count as running nor get reaped twice.
    """
    if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
        return None
    with handle.claim_lock():
        if reap is not None:
            reap(study)
        if holds(own_trials(study), n_trials, (*FINISHED, TrialState.RUNNING)):
            return None
        return study.ask()


def holds(trials: Sequence[FrozenTrial], n_trials: int, counted: Sequence[TrialState]) -> bool:
    """Whether `trials` hold `n_trials` in the `counted` states (the study's size, not a count of
    more to run), with no retry waiting to run."""
    if any(t.state == TrialState.WAITING for t in trials):
        return False
    return sum(t.state in counted for t in trials) >= n_trials


TrialObserver = Callable[[optuna.Study, FrozenTrial], None]


class TrialGuardLike(Protocol):
    """What `run_worker` needs from `search.parallel.heartbeat.TrialGuard`."""

    def watch(self, study: optuna.Study, trial: optuna.Trial) -> contextlib.AbstractContextManager[None]: ...

    def reap(self, study: optuna.Study) -> list[int]: ...

    def retry(self, study: optuna.Study, trial: FrozenTrial) -> int | None: ...


def register_trial(study: optuna.Study, trial: optuna.Trial, guard: TrialGuardLike | None = None) -> str:
    """Registers a claimed trial in `open_work`: if this process dies on an unexpected error, the
    trial is closed as FAIL with the reason (and queued for retry by `guard`) instead of staying
    RUNNING. Returns the key to pass to `open_work.closed` once the trial was told."""
    key = f"optuna-trial:{study.study_name}:{trial.number}"
    open_work.opened(key, lambda reason: _fail_if_open(study, trial, reason, guard))
    return key


def _fail_if_open(
    study: optuna.Study, trial: optuna.Trial, reason: str, guard: TrialGuardLike | None
) -> None:
    if adapter.frozen_trial(study, trial.number).state.is_finished():
        return
    adapter.set_trial_attr(study, trial.number, v.ATTR_ERROR, reason[:500])
    if adapter.fail_trial(study, trial.number) and guard is not None:
        guard.retry(study, adapter.frozen_trial(study, trial.number))


@dataclass
class WorkerResult:
    ran: int
    failed: int
    stopped_by: str


def run_worker(
    study: optuna.Study,
    handle: StorageHandle,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout: float | None = None,
    max_failures: int | None = None,
    observers: Sequence[TrialObserver] = (),
    guard: TrialGuardLike | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    out_of_time: Callable[[], bool] = lambda: False,
) -> WorkerResult:
    """Claims and runs trials until the study holds N finished ones, time is up, or too many fail.

    With a `guard`, each trial records its worker and heartbeat, dead workers' trials are reaped
    before every claim, and a trial interrupted by SIGTERM/Ctrl-C is closed as FAIL and enqueued
    again with the same params; `should_stop` turning true ends the loop after the current trial.
    `out_of_time` (a time budget's search share, `search.time_budget.deadlines`) ends it before the
    next claim.
    Freed memory goes back to the system after every trial.
    """
    deadline = time.monotonic() + timeout if timeout else None
    limit = max_failures if max_failures is not None else max(3, n_trials)
    ran = failed = 0
    while True:
        if should_stop():
            return WorkerResult(ran, failed, "interrupted")
        if deadline is not None and time.monotonic() >= deadline:
            return WorkerResult(ran, failed, "timeout")
        if out_of_time():
            return WorkerResult(ran, failed, "budget")
        if failed >= limit:
            return WorkerResult(ran, failed, "failures")
        trial = claim_trial(study, handle, n_trials, reap=guard.reap if guard is not None else None)
        if trial is None:
            return WorkerResult(ran, failed, "n_trials")
        key = register_trial(study, trial, guard)
        try:
            with guard.watch(study, trial) if guard is not None else contextlib.nullcontext():
                state = run_one(study, trial, objective)
        except (KeyboardInterrupt, SystemExit):
            frozen = adapter.frozen_trial(study, trial.number)
            if frozen.state.is_finished():
                open_work.closed(key)
            if guard is not None:
                guard.retry(study, frozen)
            raise
        open_work.closed(key)
        ran += 1
        failed += state == TrialState.FAIL
        frozen = adapter.frozen_trial(study, trial.number)
        for observe in observers:
            observe(study, frozen)
        release_memory()  # a long-lived worker would otherwise stay at its largest trial's peak


def run_one(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]
) -> TrialState:
    """Runs the objective and tells Optuna how it ended; Ctrl-C/SIGTERM closes the trial, then stops."""
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        return tell(study, trial, TrialState.PRUNED)
    except (KeyboardInterrupt, SystemExit):
        tell(study, trial, TrialState.FAIL)
        raise
    except Exception:  # the objective recorded the error; the study goes on
        return tell(study, trial, TrialState.FAIL)
    return tell(study, trial, TrialState.COMPLETE, value)


def tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None = None
) -> TrialState:
    """`study.tell`, tolerating a trial that a reaper already failed (a false alarm on a slow worker),
    and a grid sampler's `study.stop()`, which Optuna refuses outside `optimize`: the trial is stored
    before that hook runs, and `claim_trial` stops at an exhausted grid.
    """
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise
    except (ValueError, UpdateFinishedTrialError) as error:
        frozen = adapter.frozen_trial(study, trial.number)
        if not frozen.state.is_finished():
            raise
        _logger.warning("trial %s was already %s: %s", trial.number, frozen.state.name, error)
        return frozen.state
    return state
