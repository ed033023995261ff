"""`search.time_budget.budgeted`: the reproduction's workload, measured from the trials, and its speed-up."""

from __future__ import annotations

import optuna
import torch

from search.experiment.spec import reproduction_spec, validate_experiment
from search.parallel.plan import WorkerSlot
from search.time_budget import split as tb
from search.time_budget.budgeted import (
    members_at_once,
    reproduction_speedup,
    reproduction_workload,
    trial_epochs,
    trial_seconds,
)
from tests.conftest import tiny_experiment


def test_the_reproduction_workload_follows_the_section() -> None:
    raw = tiny_experiment(reproduce={"epochs": 30, "top_k": 3, "set": {"data.train_fraction": 1}})
    raw["data"]["train_fraction"] = 0.3
    spec = validate_experiment(raw)
    workload = reproduction_workload(spec, reproduction_spec(spec), trial_images=16_200)
    assert workload == tb.Workload(epochs=30, images=54_000, members=3)
    plain = validate_experiment(tiny_experiment())
    assert reproduction_workload(plain, plain, trial_images=1_150) == tb.Workload(2, 1_150, 1)


def test_a_finished_trials_seconds_and_epochs() -> None:
    study = optuna.create_study()
    study.optimize(lambda trial: trial.report(0.5, 1) or trial.report(0.6, 2) or 0.6, n_trials=1)
    (trial,) = study.trials
    assert trial_seconds(trial) == (trial.datetime_complete - trial.datetime_start).total_seconds()
    assert trial_epochs(trial, default=9) == 2
    assert trial_epochs(optuna.trial.create_trial(value=1.0), default=9) == 9
    study.ask()
    assert trial_seconds(study.trials[1]) is None  # still running


def test_a_cpu_pool_worker_had_a_share_of_the_threads_the_reproduction_has_all_of() -> None:
    total = torch.get_num_threads()
    assert reproduction_speedup([WorkerSlot(0, "cuda", ("0",))]) == 1.0
    assert reproduction_speedup([WorkerSlot(0, "cpu")]) == tb.Threads(total, total)  # every thread already
    pooled = reproduction_speedup([WorkerSlot(0, "cpu", (), 1, 0), WorkerSlot(1, "cpu", (), 1, 0)])
    assert pooled == tb.Threads(1, total)


def test_a_cpu_pools_workers_retrain_members_at_once_elsewhere_one_after_another() -> None:
    pool = [WorkerSlot(0, "cpu", (), 1, 0), WorkerSlot(1, "cpu", (), 1, 0)]
    assert members_at_once(pool) == 2
    assert members_at_once(pool[:1]) == 1
    assert members_at_once([WorkerSlot(0, "cuda", ("0",)), WorkerSlot(1, "cuda", ("1",))]) == 1
