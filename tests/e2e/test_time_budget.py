"""`tune --budget` end to end on tiny digits: the search stops on its share, the reproduction runs, and
the whole command ends within the budget plus a tolerance for a loaded machine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.study.storage import open_storage
from search.study.study import find_study
from search.tracking import load_settings
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli
from tests.helpers.parallel_helpers import start_cli

BUDGET = 50.0


TOLERANCE = 25.0  # a loaded 2-core machine: MLflow, registration and Python's own start-up vary


def test_tune_with_a_budget_stops_the_search_and_reproduces_within_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_experiment(name="tiny-budget", reproduce={"epochs": 2})
    raw["search"]["n_trials"] = 500  # far more than fit: the budget must stop the search
    experiment = write_experiment(workdir, raw)
    started = time.monotonic()
    result = run_cli(["tune", str(experiment), "--budget", f"{BUDGET:.0f}s", "--quiet"], capsys)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    assert elapsed < BUDGET + TOLERANCE, (elapsed, result.err)

    assert "budget 50s: search ~" in result.err  # the plan, at the start
    assert "budget 50s used: search " in result.err  # the actual split, at the end
    assert "registered models:/tiny-budget@champion (version 1)" in result.out

    study = find_study(open_storage(None), "tiny-budget")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 1 <= len(finished) < 500

    client = MlflowClient(load_settings().tracking_uri)
    parent = client.get_run(study.user_attrs[v.STUDY_ATTR_PARENT_RUN]).data.tags
    assert parent[v.TAG_BUDGET_SECONDS] == "50"
    assert parent[v.TAG_BUDGET_SEARCH_STOPPED] == "budget"
    assert parent[v.TAG_BUDGET_PLAN].startswith("budget 50s: search ~")
    search, reproduce, total = (
        float(parent[name])
        for name in (v.TAG_BUDGET_SEARCH_ACTUAL, v.TAG_BUDGET_REPRODUCE_ACTUAL, v.TAG_BUDGET_TOTAL_ACTUAL)
    )
    assert search + reproduce == pytest.approx(total, abs=0.2)
    assert search < BUDGET - float(parent[v.TAG_BUDGET_REPRODUCE_PLANNED]) + TOLERANCE
    assert total < BUDGET + TOLERANCE
    assert not list((workdir / ".convtune" / "budget").glob("*.json"))  # the clock's file is gone


@pytest.mark.slow
def test_a_two_worker_search_shares_the_budget_and_both_workers_stop_on_it(workdir: Path) -> None:
    """`--workers 2` under `--budget`: both worker processes read the search's share from the clock
    file, the command ends within the budget with no trial left running, and the ensemble's two
    members are retrained at once, one per worker."""
    budget = 80.0
    raw = tiny_experiment(name="tiny-budget-pool", reproduce={"epochs": 2, "top_k": 2})
    raw["search"]["n_trials"] = 500
    experiment = write_experiment(workdir, raw)
    started = time.monotonic()
    args = ["tune", str(experiment), "--budget", f"{budget:.0f}s", "--devices", "cpu", "--workers", "2"]
    process = start_cli([*args, "--quiet"], workdir)
    out, err = process.communicate(timeout=budget + 3 * TOLERANCE)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, err[-3000:]
    assert elapsed < budget + TOLERANCE, (elapsed, err[-3000:])
    assert "registered models:/tiny-budget-pool@ensemble (version 1)" in out
    assert "2 members, 2 at once" in err

    study = find_study(open_storage(None), "tiny-budget-pool")
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 2 <= len(finished) < 500
    assert len({t.user_attrs.get(v.ATTR_WORKER) for t in finished}) == 2  # both workers trained

    client = MlflowClient(load_settings().tracking_uri)
    parent = client.get_run(study.user_attrs[v.STUDY_ATTR_PARENT_RUN]).data.tags
    assert parent[v.TAG_BUDGET_SEARCH_STOPPED] == "budget"
    assert float(parent[v.TAG_BUDGET_TOTAL_ACTUAL]) < budget + TOLERANCE
    assert not list((workdir / ".convtune" / "budget").glob("*.json"))

    experiment_id = client.get_experiment_by_name("tiny-budget-pool").experiment_id
    (ensemble,) = client.search_runs([experiment_id], f"tags.`{v.TAG_ENSEMBLE_TRIALS}` != ''")
    members = [
        client.get_run(run_id).info for run_id in ensemble.data.tags[v.TAG_ENSEMBLE_MEMBERS].split(",")
    ]
    assert len(members) == 2
    assert max(m.start_time for m in members) < min(m.end_time for m in members)  # trained at once
