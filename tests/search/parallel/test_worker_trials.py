"""`search.parallel.worker_trials`: a worker's study on its slot, from the job the parent wrote."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.experiment.spec import validate_experiment
from search.parallel.heartbeat import HEARTBEAT_INTERVAL
from search.parallel.job import WorkerJob
from search.parallel.plan import WorkerSlot
from search.parallel.stop_flag import StopFlag
from search.parallel.worker_trials import (
    budget_clock,
    heartbeat_interval,
    job_slot,
    run_trials,
    trial_settings_for,
)
from search.study.stopping import StopCallback
from search.study.storage import open_storage
from search.tracking import Tracker, load_settings
from tests.conftest import tiny_experiment


def _job(workdir: Path, **changes: object) -> WorkerJob:
    spec = validate_experiment(tiny_experiment(search__n_trials=1, trainer__max_epochs=1))
    tracker = Tracker(load_settings())
    fields: dict = {
        "spec": spec.model_dump(mode="json", by_alias=True),
        "study_name": "tiny",
        "storage": str(workdir / "journal.log"),
        "n_trials": 1,
        "deadline": None,
        "parent_run_id": tracker.study_run("tiny"),
        "artifacts": False,
        "in_channels": 1,
        "image_size": (8, 8),
        "tracking": asdict(tracker.settings),
        "slot": asdict(WorkerSlot(1, "cpu")),
        "result_path": str(workdir / "result.json"),
    }
    return WorkerJob(**{**fields, **changes})


def test_the_slot_comes_back_from_json_with_its_tuples(workdir: Path) -> None:
    slot = WorkerSlot(2, "cuda", ("3", "5"), indices=(0, 1))
    job = WorkerJob.read(_job(workdir, slot=asdict(slot)).write(workdir / "job.json"))
    assert job.slot["gpus"] == ["3", "5"] and job_slot(job) == slot


def test_heartbeats_go_through_the_rdb_storage_only() -> None:
    assert heartbeat_interval("postgresql://host/db") == HEARTBEAT_INTERVAL
    assert heartbeat_interval("sqlite:///optuna.db") == HEARTBEAT_INTERVAL
    assert heartbeat_interval("/tmp/optuna.journal") is None


def test_trial_settings_follow_the_slot_and_stop_on_request() -> None:
    stop = StopFlag()
    gpu = trial_settings_for(WorkerSlot(0, "cuda", ("1",)), True, stop)
    cpu = trial_settings_for(WorkerSlot(1, "cpu"), False, stop)
    assert (gpu.device, gpu.accelerator, gpu.artifacts) == ("cuda:1", "gpu", True)
    assert (cpu.device, cpu.accelerator, cpu.artifacts) == ("cpu:1", "cpu", False)
    (make,) = cpu.extra_callbacks
    assert isinstance(make(None), StopCallback)


def test_without_a_budget_the_clock_never_runs_out(workdir: Path) -> None:
    job = _job(workdir)

    class Holder:
        settings = trial_settings_for(WorkerSlot(0, "cpu"), False, StopFlag())

    out_of_time = budget_clock(job, Holder())  # type: ignore[arg-type]
    assert not out_of_time() and len(Holder.settings.extra_callbacks) == 1
    with_clock = budget_clock(_job(workdir, clock_path=str(workdir / "clock.json")), Holder())  # type: ignore[arg-type]
    assert not with_clock() and len(Holder.settings.extra_callbacks) == 2  # no clock file yet: no limit


def test_a_job_runs_its_trials_on_its_slot_and_reports_them(workdir: Path) -> None:
    job = _job(workdir)
    assert run_trials(job, StopFlag()) == 0
    assert json.loads(Path(job.result_path).read_text()) == {"ran": 1, "failed": 0, "stopped_by": "n_trials"}
    study = optuna.load_study(study_name="tiny", storage=open_storage(job.storage).storage)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["device"] == "cpu:1"


def test_a_job_past_its_deadline_runs_nothing(workdir: Path) -> None:
    job = _job(workdir, deadline=0.0)
    assert run_trials(job, StopFlag()) == 0
    assert not Path(job.result_path).exists()
