"""`search.parallel.heartbeat`: who runs a trial, its heartbeat, and the reaper that fails dead trials."""

from __future__ import annotations

import os
import subprocess
import time

import optuna
from optuna.trial import TrialState

from search.parallel.heartbeat import TrialGuard, pid_alive, this_host


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _running_trial(study: optuna.Study, **attrs: object) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("optim.lr", 1e-3, 1e-2, log=True)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


def test_a_live_process_is_alive_and_a_reaped_one_is_not() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())


def test_watch_records_the_owner_and_beats() -> None:
    study = optuna.create_study()
    trial = study.ask()
    before = time.time()
    with TrialGuard(None, max_retries=1, worker="cpu:1", interval=0.05).watch(study, trial):
        first = study.trials[0].user_attrs["heartbeat"]
        time.sleep(0.3)
    attrs = study.trials[0].user_attrs
    assert attrs["host"] == this_host() and attrs["pid"] == os.getpid() and attrs["worker"] == "cpu:1"
    assert before <= first < attrs["heartbeat"]  # the thread beat again while the body ran


def test_a_trial_whose_worker_died_is_failed_and_retried_with_the_same_params() -> None:
    study = optuna.create_study()
    dead = _running_trial(study, host=this_host(), pid=_dead_pid())
    _running_trial(study, host=this_host(), pid=os.getpid())  # this process: alive
    assert TrialGuard(None, max_retries=1).reap(study) == [dead.number]
    failed, alive, retry = study.get_trials()
    assert failed.state == TrialState.FAIL and "died" in failed.user_attrs["died"]
    assert alive.state == TrialState.RUNNING
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs["retry_of"] == dead.number and retry.user_attrs["retry_count"] == 1
    claimed = study.ask()  # the waiting retry is claimed first, with the dead trial's params
    assert claimed.number == retry.number
    assert claimed.suggest_float("optim.lr", 1e-3, 1e-2, log=True) == failed.params["optim.lr"]


def test_a_stale_heartbeat_is_death_too_and_retries_stop_at_max_retries() -> None:
    study = optuna.create_study()
    _running_trial(study, host="elsewhere", pid=1, heartbeat=time.time() - 3600)
    assert TrialGuard(None, max_retries=0).reap(study) == [0]
    (failed,) = study.get_trials()
    assert failed.state == TrialState.FAIL and "no heartbeat for" in failed.user_attrs["died"]
