"""`search.time_budget.budgeted`: the reproduction's workload, the split recorded on the study's run."""

from __future__ import annotations

from search.experiment.spec import reproduction_spec, validate_experiment
from search.time_budget import split as tb
from tests.conftest import tiny_experiment


def test_the_reproduction_workload_follows_the_section() -> None:
    from search.time_budget.budgeted import reproduction_workload

    raw = tiny_experiment(reproduce={"epochs": 30, "top_k": 3, "set": {"data.train_fraction": 1}})
    raw["data"]["train_fraction"] = 0.3
    spec = validate_experiment(raw)
    workload = reproduction_workload(spec, reproduction_spec(spec), trial_images=16_200)
    assert workload == tb.Workload(epochs=30, images=54_000, members=3)
    plain = validate_experiment(tiny_experiment())
    assert reproduction_workload(plain, plain, trial_images=1_150) == tb.Workload(2, 1_150, 1)
