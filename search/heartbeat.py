"""Liveness of running trials: owner and heartbeat records, and the reaper that fails dead trials.

Optuna's own heartbeat runs only inside `study.optimize()` and only on RDB storages; convtune's
workers use ask/tell, so this module keeps the equivalent for every storage:

- each running trial records its worker (`host`, `pid`) and a heartbeat: on RDB storages with a
  heartbeat interval through `storage.record_heartbeat`, on the journal default as the user attr
  `heartbeat` (a Unix time), both every `HEARTBEAT_INTERVAL` seconds from a daemon thread;
- before a worker claims a trial, `TrialGuard.reap` fails the RUNNING trials whose worker is dead
  (same host, pid gone) or whose heartbeat is older than `STALE_AFTER` seconds, marks their MLflow
  run KILLED (tag `optuna.state=FAIL`) and enqueues a retry with the same params, at most
  `max_retries` times per original trial.
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
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from search.objective import USER_ATTR_RUN_ID
from search.tracking import Tracker

HEARTBEAT_INTERVAL = 10
STALE_AFTER = 60
USER_ATTR_HOST = "host"
USER_ATTR_PID = "pid"
USER_ATTR_WORKER = "worker"
USER_ATTR_HEARTBEAT = "heartbeat"
USER_ATTR_RETRY_OF = "retry_of"
USER_ATTR_RETRY_COUNT = "retry_count"
USER_ATTR_DIED = "died"

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


def _rdb_heartbeat(study: optuna.Study) -> BaseHeartbeat | None:
    storage = study._storage
    return storage if is_heartbeat_enabled(storage) else None  # type: ignore[return-value]


class _HeartbeatThread:
    """Beats for one trial until stopped, or until the trial is no longer RUNNING."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: float) -> None:
        self.study = study
        self.trial_id = trial_id
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"convtune-heartbeat-{trial_id}", daemon=True)

    def _run(self) -> None:
        rdb = _rdb_heartbeat(self.study)
        while not self.stop_event.wait(self.interval):
            try:
                if rdb is not None:
                    rdb.record_heartbeat(self.trial_id)
                else:
                    self.study._storage.set_trial_user_attr(self.trial_id, USER_ATTR_HEARTBEAT, time.time())
            except UpdateFinishedTrialError:
                return
            except Exception as error:  # a storage hiccup must not end the trial; the next beat retries
                _logger.warning("heartbeat of trial id %s failed: %s", self.trial_id, error)

    def __enter__(self) -> _HeartbeatThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)


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
        storage = study._storage
        trial_id = trial._trial_id
        storage.set_trial_user_attr(trial_id, USER_ATTR_HOST, this_host())
        storage.set_trial_user_attr(trial_id, USER_ATTR_PID, os.getpid())
        storage.set_trial_user_attr(trial_id, USER_ATTR_WORKER, self.worker)
        rdb = _rdb_heartbeat(study)
        if rdb is not None:
            rdb.record_heartbeat(trial_id)
        else:
            storage.set_trial_user_attr(trial_id, USER_ATTR_HEARTBEAT, time.time())
        with _HeartbeatThread(study, trial_id, self.interval):
            yield

    def death_reason(
        self, study: optuna.Study, trial: FrozenTrial, stale_ids: set[int], now: float
    ) -> str | None:
        attrs = trial.user_attrs
        host, pid = attrs.get(USER_ATTR_HOST), attrs.get(USER_ATTR_PID)
        if host == this_host() and isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
            return f"worker {host}:{pid} died (killed or crashed) while running the trial"
        if trial._trial_id in stale_ids:
            return f"worker {host}:{pid} stopped sending heartbeats (storage heartbeat is stale)"
        beat = attrs.get(USER_ATTR_HEARTBEAT)
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        last = beat if isinstance(beat, (int, float)) else started
        if _rdb_heartbeat(study) is None and now - last > self.stale_after:
            return f"worker {host}:{pid} sent no heartbeat for {now - last:.0f} s"
        return None

    def reap(self, study: optuna.Study) -> list[int]:
        """Fails dead RUNNING trials, closes their MLflow runs, enqueues retries; hold the claim lock."""
        rdb = _rdb_heartbeat(study)
        stale_ids = set(rdb._get_stale_trial_ids(study._study_id)) if rdb is not None else set()
        now = time.time()
        reaped = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = self.death_reason(study, trial, stale_ids, now)
            if reason is None:
                continue
            try:
                study._storage.set_trial_user_attr(trial._trial_id, USER_ATTR_DIED, reason)
                if not study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:
                continue
            reaped.append(trial.number)
            self.close_run(study, trial, reason, status="KILLED")
            self.retry(study, trial)
        return reaped

    def retry(self, study: optuna.Study, trial: FrozenTrial) -> int | None:
        """Enqueues the trial's params again, unless it already used up its retries; returns the count."""
        count = int(trial.user_attrs.get(USER_ATTR_RETRY_COUNT, 0)) + 1
        if count > self.max_retries or not trial.params:
            return None
        study.enqueue_trial(
            dict(trial.params),
            user_attrs={USER_ATTR_RETRY_OF: trial.number, USER_ATTR_RETRY_COUNT: count},
        )
        return count

    def close_run(self, study: optuna.Study, trial: FrozenTrial, reason: str, *, status: str) -> None:
        """Ends the trial's MLflow run (found by user attr, else by tags) unless it already ended."""
        if self.tracker is None:
            return
        try:
            for run_id in self._run_ids(study, trial):
                if self.tracker.run_status(run_id) != "RUNNING":
                    continue
                self.tracker.set_tags(run_id, {"optuna.state": "FAIL", "convtune.error": reason[:500]})
                self.tracker.client.set_terminated(run_id, status)
        except Exception as error:  # MLflow down: the Optuna state is what counts; say so and go on
            _logger.warning("could not close the MLflow run of trial %s: %s", trial.number, error)

    def _run_ids(self, study: optuna.Study, trial: FrozenTrial) -> list[str]:
        run_id = trial.user_attrs.get(USER_ATTR_RUN_ID)
        if run_id:
            return [str(run_id)]
        assert self.tracker is not None
        experiment = self.tracker.client.get_experiment_by_name(study.study_name)
        if experiment is None:
            return []
        runs = self.tracker.client.search_runs(
            [experiment.experiment_id],
            f"tags.`optuna.trial_number` = '{trial.number}' and tags.`convtune.role` = 'trial'",
        )
        return [run.info.run_id for run in runs]
