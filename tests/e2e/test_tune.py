"""End to end on digits: real Optuna studies, real MLflow runs, tiny CPU trainings."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.cli.main import main
from search.experiment.spec import validate_experiment
from search.study.runner import TuneOptions, tune
from search.tracking import load_settings
from tests.conftest import tiny_experiment, write_experiment


def _client() -> MlflowClient:
    settings = load_settings()
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def _trial_runs(client: MlflowClient, study: str) -> list:
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], "tags.`convtune.role` = 'trial'")
    return sorted(runs, key=lambda r: int(r.data.tags["optuna.trial_number"]))


def test_two_trial_study_leaves_two_child_runs_with_params_and_epoch_metrics(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment())
    study = tune(spec, TuneOptions(progress=False))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    client = _client()
    runs = _trial_runs(client, "tiny")
    assert len(runs) == 2
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    for trial, run in zip(trials, runs, strict=False):
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.info.run_name == f"trial-{trial.number:04d}"
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.data.tags["optuna.state"] == "COMPLETE"
        assert run.data.tags["convtune.precision"] == "32"  # what the trial trained in, resolved
        assert run.info.status == "FINISHED"
        assert float(run.data.params["optim.lr"]) == pytest.approx(trial.params["optim.lr"])
        assert run.data.params["model.channels"] == "[8, 16]"
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert [m.step for m in history] == [0, 1]
        assert max(m.value for m in history) == pytest.approx(trial.value)
        for key in ("train/loss", "val/loss", "lr", "throughput/img_s"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 2, key
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_rerunning_resumes_instead_of_starting_over(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment())
    first = tune(spec, TuneOptions(progress=False, n_trials=1))
    assert len(first.get_trials()) == 1
    first_params = first.get_trials()[0].params
    again = tune(spec, TuneOptions(progress=False, n_trials=3))
    trials = again.get_trials()
    assert len(trials) == 3
    assert trials[0].params == first_params
    assert len(_trial_runs(_client(), "tiny")) == 3
    assert again.user_attrs["mlflow_parent_run_id"] == first.user_attrs["mlflow_parent_run_id"]


def test_cli_tune_then_status(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["tune", str(path), "--quiet", "--n-trials", "1"]) == 0
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "COMPLETE" in out and "best: trial 0" in out
