"""Several worker processes on one study (`convtune tune --workers 2`): exactly N trials, each tracked.

Slow (worker processes, 30 epochs per trial): `pytest -m slow tests/e2e/test_worker_pool.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.study.storage import open_storage
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client, postgres_database, start_cli, trial_runs


def _check_n_unique_trials(study: optuna.Study, n: int) -> None:
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n, [(t.number, t.state.name) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.params["optim.lr"] for t in complete}) == n  # each worker samples its own values
    assert {t.user_attrs["device"] for t in complete} == {"cpu:0", "cpu:1"}
    runs = trial_runs(mlflow_client(), study.study_name)
    assert len(runs) == n
    assert {r.data.tags["optuna.trial_number"] for r in runs} == {str(t.number) for t in complete}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["convtune.device"] for r in runs} == {"cpu:0", "cpu:1"}


@pytest.mark.slow
def test_two_cpu_workers_on_the_embedded_default_finish_exactly_n_trials(workdir: Path) -> None:
    # trials long enough (30 epochs) that the second worker is up before the first finishes them all
    path = write_experiment(workdir, tiny_experiment(search__n_trials=6, trainer__max_epochs=30))
    process = start_cli(["tune", str(path), "--devices", "cpu", "--workers", "2", "--quiet"], workdir)
    _out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    _check_n_unique_trials(study, 6)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.mark.slow
def test_two_workers_against_postgresql_finish_exactly_n_trials(workdir: Path, pg_url: str) -> None:
    path = write_experiment(workdir, tiny_experiment(search__n_trials=6, trainer__max_epochs=30))
    args = ["tune", str(path), "--devices", "cpu", "--workers", "2", "--quiet", "--storage", pg_url]
    process = start_cli(args, workdir)
    _out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    study = optuna.load_study(study_name="tiny", storage=pg_url)
    _check_n_unique_trials(study, 6)
