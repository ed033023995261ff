"""`search.time_budget.budgeted`: the reproduction's workload, measured from the trials, and its speed-up."""

from __future__ import annotations

import datetime
import io
import time
from pathlib import Path

import optuna
import pytest
import torch
from rich.console import Console

from search.errors import ConvtuneError
from search.experiment.spec import reproduction_spec, validate_experiment
from search.parallel.plan import WorkerSlot
from search.time_budget import split as tb
from search.time_budget.budgeted import (
    BudgetedSearch,
    measure,
    members_at_once,
    reproduction_plan,
    reproduction_speedup,
    reproduction_workload,
)
from search.time_budget.deadlines import SearchClock
from tests.conftest import tiny_experiment


def test_the_reproduction_workload_follows_the_section() -> None:
    raw = tiny_experiment(reproduce={"epochs": 30, "top_k": 3, "set": {"data.train_fraction": 1}})
    raw["data"]["train_fraction"] = 0.3
    spec = validate_experiment(raw)
    workload = reproduction_workload(spec, reproduction_spec(spec), trial_images=16_200)
    assert workload == tb.Workload(epochs=30, images=54_000, members=3)
    plain = validate_experiment(tiny_experiment())
    assert reproduction_workload(plain, plain, trial_images=1_150) == tb.Workload(2, 1_150, 1)


def test_the_plan_measures_the_members_the_ensemble_would_retrain() -> None:
    study = optuna.create_study(direction="maximize")
    channels = optuna.distributions.CategoricalDistribution([16, 64])
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0)
    start = datetime.datetime(2026, 12, 7, 12, 0, 0)
    for value, width, seconds in ((0.95, 64, 200), (0.94, 64, 210), (0.90, 16, 50)):
        trial = optuna.trial.create_trial(
            params={"model.channels.0": width, "optim.lr": value / 10},
            distributions={"model.channels.0": channels, "optim.lr": lr},
            value=value,
            intermediate_values={0: value, 1: value},
        )
        trial.datetime_start, trial.datetime_complete = start, start + datetime.timedelta(seconds=seconds)
        study.add_trial(trial)
    by_params = measure(study, 2, 1_000, validate_experiment(tiny_experiment()))
    by_network = measure(
        study, 2, 1_000, validate_experiment(tiny_experiment(reproduce={"distinct": "architecture"}))
    )
    assert [s.seconds for s in by_params.speeds] == [200, 210]
    assert [s.seconds for s in by_network.speeds] == [200, 50]  # the narrow network's trial, not the twin


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


def test_the_plan_is_printed_again_only_when_the_reserve_moves(tmp_path: Path) -> None:
    out = io.StringIO()
    spec = validate_experiment(tiny_experiment())
    limit = BudgetedSearch(3600, time.time(), spec, spec, Console(file=out, width=400))
    limit.workload, limit.trial_images = tb.Workload(epochs=30, images=54_000), 16_200
    limit.clock = SearchClock(tmp_path / "clock.json")
    study = optuna.create_study(direction="maximize")
    limit.observe(study)  # the prior share, nothing measured: not printed again
    for number in range(3):
        study.add_trial(_finished(0.80 + number / 100, number, seconds=40.0))
    limit.observe(study)  # first measured: printed
    first = limit.planned_reserve
    study.add_trial(_finished(0.70, 3, seconds=40.0))
    limit.observe(study)  # not among the best: the plan is the same
    study.add_trial(_finished(0.90, 4, seconds=80.0))
    limit.observe(study)  # a best trial twice as slow: the reserve roughly doubles, printed again

    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and len(limit.planned) == 2  # (the prior share is printed by begin())
    assert lines[0].startswith("re-estimated from 3 complete trials: ")
    assert lines[1].startswith("re-estimated from 5 complete trials: ")
    assert limit.planned_reserve > 1.5 * first


def test_a_budget_spent_by_the_search_reproduces_nothing_and_says_so() -> None:
    spec = validate_experiment(tiny_experiment())
    study = optuna.create_study(direction="maximize")
    for number in range(3):
        study.add_trial(_finished(0.80 + number / 100, number, seconds=40.0))

    def planned_with(seconds_left: float) -> object:
        limit = BudgetedSearch(
            3600, time.time() - 3600 + seconds_left, spec, spec, Console(file=io.StringIO())
        )
        limit.workload, limit.trial_images = tb.Workload(epochs=30, images=54_000, members=2), 16_200
        return reproduction_plan(limit, study, storage=None)

    assert planned_with(3000).top_k == 2  # type: ignore[attr-defined]
    with pytest.raises(
        ConvtuneError, match=r"^the --budget left 5s after the search, less than the smallest"
    ):
        planned_with(5)


def test_a_budget_too_small_for_any_reproduction_prints_no_reduced_plan(tmp_path: Path) -> None:
    """The reduction ("1 epoch instead of 30") is only news when something still fits; when nothing
    does, `reproduction_plan`'s error is the one line the user sees about it."""

    def notes_with(budget: float) -> list[str]:
        spec = validate_experiment(tiny_experiment())
        limit = BudgetedSearch(budget, time.time(), spec, spec, Console(file=io.StringIO(), width=400))
        limit.workload, limit.trial_images = tb.Workload(epochs=30, images=54_000), 16_200
        limit.clock = SearchClock(tmp_path / f"clock-{budget}.json")
        study = optuna.create_study(direction="maximize")
        for number in range(3):
            study.add_trial(_finished(0.80 + number / 100, number, seconds=40.0))
        limit.observe(study)
        return limit.notes

    assert any("epochs instead of 30" in note for note in notes_with(600))  # reduced, still fits
    assert notes_with(5) == []


def _finished(value: float, x: int, seconds: float) -> optuna.trial.FrozenTrial:
    """A COMPLETE trial of 5 reported epochs that took `seconds`."""
    trial = optuna.trial.create_trial(
        value=value,
        params={"x": x},
        distributions={"x": optuna.distributions.IntDistribution(0, 10)},
        intermediate_values={epoch: value for epoch in range(5)},
    )
    trial.datetime_start = datetime.datetime(2026, 12, 6, 9, 0, 0)
    trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=seconds)
    return trial
