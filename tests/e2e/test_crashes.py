"""Crashes: killed workers, SIGTERM, diverged (NaN) losses; Optuna states and MLflow statuses must agree."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.experiment.spec import validate_experiment
from search.parallel.heartbeat import TrialGuard, this_host
from search.study.prepare import prepare_study
from search.study.runner import TuneOptions, tune
from search.study.storage import open_storage
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client, start_cli, trial_runs, wait_for


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _start_fake_trial(study: optuna.Study, tracker, parent: str, attrs: dict) -> tuple[optuna.Trial, str]:
    """A trial as a worker leaves it when it dies: RUNNING, its params sampled, its MLflow run open."""
    trial = study.ask()
    lr = trial.suggest_float("optim.lr", 1e-3, 1e-2, log=True)
    run_id = tracker.start_trial(
        study_name=study.study_name, parent_run_id=parent, trial_number=trial.number, params={"optim.lr": lr}
    )
    for key, value in {**attrs, "mlflow_run_id": run_id}.items():
        trial.set_user_attr(key, value)
    return trial, run_id


def test_rerun_after_a_killed_worker_fails_its_trial_and_retries_the_same_params(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(search__n_trials=1))
    prepared = prepare_study(spec, TuneOptions(progress=False))
    study, tracker, parent = prepared.study, prepared.tracker, prepared.parent_run_id
    _dead, run_id = _start_fake_trial(
        study, tracker, parent, {"host": this_host(), "pid": _dead_pid(), "device": "cpu:1"}
    )
    study = tune(spec, TuneOptions(progress=False))
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and "died" in first.user_attrs["died"]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == first.params
    assert retry.user_attrs["retry_of"] == 0 and retry.user_attrs["retry_count"] == 1
    run = mlflow_client().get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "FAIL"
    assert "died" in run.data.tags["convtune.error"]


def test_stale_heartbeat_from_another_machine_is_reaped_and_retries_are_bounded(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(search__max_retries=1))
    prepared = prepare_study(spec, TuneOptions(progress=False))
    study, handle, tracker, parent = prepared.study, prepared.handle, prepared.tracker, prepared.parent_run_id
    guard = TrialGuard(tracker, max_retries=1)
    attrs = {"host": "elsewhere", "pid": 1, "heartbeat": time.time() - 3600}
    _start_fake_trial(study, tracker, parent, attrs)
    _start_fake_trial(study, tracker, parent, {"host": "elsewhere", "pid": 2, "heartbeat": time.time()})
    with handle.claim_lock():
        assert guard.reap(study) == [0]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    retry = study.ask()  # the waiting retry is claimed first
    assert retry.number == 2 and retry.user_attrs["retry_of"] == 0
    assert retry.suggest_float("optim.lr", 1e-3, 1e-2, log=True) == study.trials[0].params["optim.lr"]
    retry.set_user_attr("host", "elsewhere")
    retry.set_user_attr("heartbeat", time.time() - 3600)
    with handle.claim_lock():
        assert guard.reap(study) == [2]
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 0  # max_retries=1 is used up


def test_a_diverged_trial_is_pruned_with_its_reason_so_the_sampler_learns_from_it(workdir: Path) -> None:
    raw = tiny_experiment(search__n_trials=2)
    raw["optim"] = {"name": "sgd", "lr": 3e-3, "momentum": 0.9}
    spec = validate_experiment(raw)
    study = prepare_study(spec, TuneOptions(progress=False)).study
    study.enqueue_trial({"optim.lr": 1e30})  # far outside the space: SGD overflows to NaN
    study = tune(spec, TuneOptions(progress=False))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert "loss became" in trials[0].user_attrs["diverged"]
    assert study.best_trial.number == 1
    assert not any("retry_of" in t.user_attrs for t in trials)
    run = mlflow_client().get_run(trials[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "PRUNED"
    assert run.data.tags["convtune.pruned_reason"].startswith("diverged: training loss became")


def _running_trial_with_run(storage_path: Path) -> optuna.trial.FrozenTrial | None:
    if not storage_path.exists():
        return None
    storage = open_storage(str(storage_path)).storage
    if "tiny" not in optuna.get_all_study_names(storage):
        return None
    study = optuna.load_study(study_name="tiny", storage=storage)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return next((t for t in running if "mlflow_run_id" in t.user_attrs and t.intermediate_values), None)


def test_sigterm_closes_the_running_trial_and_the_rerun_resumes(workdir: Path) -> None:
    slow = validate_experiment(tiny_experiment(trainer__max_epochs=40))
    journal = workdir / ".convtune" / "optuna.journal"

    def terminate_when_a_trial_runs() -> None:
        wait_for(lambda: _running_trial_with_run(journal), 120, "a running trial")
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_a_trial_runs, daemon=True)
    killer.start()
    with pytest.raises(KeyboardInterrupt):
        tune(slow, TuneOptions(progress=False))
    killer.join(timeout=5)
    (interrupted, waiting) = optuna.load_study(study_name="tiny", storage=open_storage(None).storage).trials
    assert interrupted.state == TrialState.FAIL and "interrupted" in interrupted.user_attrs["interrupted"]
    assert waiting.state == TrialState.WAITING
    run = mlflow_client().get_run(interrupted.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "FAIL"

    study = tune(validate_experiment(tiny_experiment()), TuneOptions(progress=False))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].params == interrupted.params and trials[1].user_attrs["retry_of"] == 0
    assert {r.info.status for r in trial_runs(mlflow_client(), "tiny")} == {"KILLED", "FINISHED"}


@pytest.mark.slow
def test_sigkill_of_one_worker_mid_trial_fails_and_retries_it_while_the_other_goes_on(workdir: Path) -> None:
    path = write_experiment(workdir, tiny_experiment(search__n_trials=3, trainer__max_epochs=40))
    process = start_cli(["tune", str(path), "--devices", "cpu", "--workers", "2", "--quiet"], workdir)
    journal = workdir / ".convtune" / "optuna.journal"
    victim = wait_for(lambda: _running_trial_with_run(journal), 400, "a running trial", every=0.2)
    assert mlflow_client().get_run(victim.user_attrs["mlflow_run_id"]).info.status == "RUNNING"
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    _out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "ended abnormally" in err
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    trials = study.get_trials()
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["died"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == TrialState.COMPLETE
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    runs = trial_runs(mlflow_client(), "tiny")
    assert "RUNNING" not in {r.info.status for r in runs}
    # the retry resumed the killed trial's checkpoint in its run (tests/e2e/test_resume_workers.py)
    assert retries[0].user_attrs["mlflow_run_id"] == victim.user_attrs["mlflow_run_id"]
    assert mlflow_client().get_run(victim.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
