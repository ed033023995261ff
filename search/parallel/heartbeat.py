"""Liveness of running trials: owner and heartbeat records, and the reaper that fails dead trials.

Optuna's own heartbeat runs only inside `study.optimize()` and only on RDB storages; convtune's
workers use ask/tell, so this module keeps the equivalent for every storage:

- each running trial records its worker (`host`, `pid`) and a heartbeat: on RDB storages with a
  heartbeat interval through `storage.record_heartbeat`, on the journal default as the user attr
  `heartbeat` (a Unix time), both every `HEARTBEAT_INTERVAL` seconds from a daemon thread;
- before a worker claims a trial, `TrialGuard.reap` fails the RUNNING trials whose worker is dead
  (same host, pid gone) or whose heartbeat is stale (RDB: Optuna's `fail_stale_trials`; journal:
  older than `STALE_AFTER` seconds), marks their MLflow
  run KILLED (tag `optuna.state=FAIL`) and enqueues a retry with the same params, at most
  `max_retries` times per original trial. The retry continues from the dead trial's last epoch
  checkpoint (`search.parallel.resume`); a trial with no retry left has its checkpoint removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from search.parallel.checkpoints import CheckpointStore
from search.study import optuna_adapter as adapter
from search.tracking import vocabulary as v
from search.tracking.tracker import Tracker

HEARTBEAT_INTERVAL = 10
STALE_AFTER = 60

_logger = logging.getLogger(__name__)


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs here (a zombie, killed but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class _HeartbeatThread:
    """Beats for one trial until stopped, or until the trial is no longer RUNNING."""

    def __init__(self, study: optuna.Study, number: int, interval: float) -> None:
        self.study = study
        self.number = number
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"convtune-heartbeat-{number}", daemon=True)

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                beat(self.study, self.number)
            except UpdateFinishedTrialError:
                return
            except Exception as error:  # a storage hiccup must not end the trial; the next beat retries
                _logger.warning("heartbeat of trial %s failed: %s", self.number, error)

    def __enter__(self) -> _HeartbeatThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)


def beat(study: optuna.Study, number: int) -> None:
    """One heartbeat: Optuna's own on an RDB storage with heartbeats, else a user attr."""
    rdb = adapter.heartbeat_storage(study)
    if rdb is not None:
        rdb.record_heartbeat(adapter.trial_id(study, number))
    else:
        adapter.set_trial_attr(study, number, v.ATTR_HEARTBEAT, time.time())


@dataclass
class TrialGuard:
    """Owner records and heartbeats for this worker's trials; reaping and retries for everyone's."""

    tracker: Tracker | None
    max_retries: int
    worker: str = "cpu:0"
    interval: float = HEARTBEAT_INTERVAL
    stale_after: float = STALE_AFTER

    @contextlib.contextmanager
    def watch(self, study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
        """Records who runs the trial and keeps its heartbeat while the body runs."""
        trial.set_user_attr(v.ATTR_HOST, this_host())
        trial.set_user_attr(v.ATTR_PID, os.getpid())
        trial.set_user_attr(v.ATTR_WORKER, self.worker)
        beat(study, trial.number)
        with _HeartbeatThread(study, trial.number, self.interval):
            yield

    def death_reason(self, study: optuna.Study, trial: FrozenTrial, now: float) -> str | None:
        attrs = trial.user_attrs
        host, pid = attrs.get(v.ATTR_HOST), attrs.get(v.ATTR_PID)
        if host == this_host() and isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
            return f"worker {host}:{pid} died (killed or crashed) while running the trial"
        if adapter.heartbeat_storage(study) is not None:
            return None  # Optuna's fail_stale_trials judges RDB heartbeats
        beat_at = attrs.get(v.ATTR_HEARTBEAT)
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        last = beat_at if isinstance(beat_at, (int, float)) else started
        if now - last > self.stale_after:
            return f"worker {host}:{pid} sent no heartbeat for {now - last:.0f} s"
        return None

    def reap(self, study: optuna.Study) -> list[int]:
        """Fails dead RUNNING trials, closes their MLflow runs, enqueues retries; hold the claim lock."""
        now = time.time()
        reaped = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = self.death_reason(study, trial, now)
            if reason is None:
                continue
            try:
                adapter.set_trial_attr(study, trial.number, v.ATTR_DIED, reason)
                if not adapter.fail_trial(study, trial.number):
                    continue
            except UpdateFinishedTrialError:
                continue
            reaped.append(trial.number)
            self._after_death(study, trial, reason)
        for trial in adapter.fail_stale_trials(study):
            attrs = trial.user_attrs
            reason = (
                f"worker {attrs.get(v.ATTR_HOST)}:{attrs.get(v.ATTR_PID)} stopped sending heartbeats "
                "(storage heartbeat is stale)"
            )
            with contextlib.suppress(UpdateFinishedTrialError):
                adapter.set_trial_attr(study, trial.number, v.ATTR_DIED, reason)
            reaped.append(trial.number)
            self._after_death(study, trial, reason)
        return sorted(reaped)

    def _after_death(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
        self.close_run(study, trial, reason, status="KILLED")
        self.retry(study, trial)

    def retry(self, study: optuna.Study, trial: FrozenTrial) -> int | None:
        """Enqueues the trial's params again, unless it already used up its retries; returns the count."""
        count = int(trial.user_attrs.get(v.ATTR_RETRY_COUNT, 0)) + 1
        if count > self.max_retries or not trial.params:
            self.discard_checkpoint(study, trial)  # failed for good: nothing will continue it
            return None
        study.enqueue_trial(
            dict(trial.params),
            user_attrs={v.ATTR_RETRY_OF: trial.number, v.ATTR_RETRY_COUNT: count},
        )
        return count

    def discard_checkpoint(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Removes the checkpoint of a trial that no retry will continue (search.parallel.checkpoints)."""
        CheckpointStore.for_study(study.study_name, self.tracker).discard(trial.user_attrs.get(v.ATTR_RUN_ID))

    def close_run(self, study: optuna.Study, trial: FrozenTrial, reason: str, *, status: str) -> None:
        """Ends the trial's MLflow run (found by user attr, else by tags) unless it already ended."""
        if self.tracker is None:
            return
        try:
            run_id = trial.user_attrs.get(v.ATTR_RUN_ID)
            self.tracker.close_trial_run(study.study_name, trial.number, run_id, reason, status=status)
        except Exception as error:  # MLflow down: the Optuna state is what counts; say so and go on
            _logger.warning("could not close the MLflow run of trial %s: %s", trial.number, error)
