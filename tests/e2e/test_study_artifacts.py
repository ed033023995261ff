"""A study with pictures: every finished trial has its pictures and tables, the study its plots."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from search.experiment.spec import validate_experiment
from search.study.runner import TuneOptions, tune
from search.tracking import load_settings
from tests.conftest import tiny_experiment
from tests.helpers.pictures import TRIAL_PICTURES, assert_png


def _client() -> MlflowClient:
    settings = load_settings()
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def test_every_finished_trial_has_valid_pictures_and_the_study_its_plots(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(search={**tiny_experiment()["search"], "artifacts": True}))
    study = tune(spec, TuneOptions(progress=False))
    client = _client()
    for trial in study.trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        names = {artifact.path for artifact in client.list_artifacts(run_id)}
        assert TRIAL_PICTURES | {"architecture.md", "config.yaml"} <= names, names
        folder = Path(client.download_artifacts(run_id, "", str(workdir / f"run{trial.number}")))
        for name in TRIAL_PICTURES:
            assert_png(folder / name)
        table = (folder / "architecture.md").read_text()
        columns = "kind, filter, stride, padding, output, receptive field, dense equivalent, multiply-adds"
        for column in columns.split(", "):
            assert column in table
    parent = study.user_attrs["mlflow_parent_run_id"]
    folder = Path(client.download_artifacts(parent, "", str(workdir / "parent")))
    for name in ("optimization_history", "parallel_coordinate", "slice"):
        assert_png(folder / f"{name}.png")
    html = (folder / "study_plots.html").read_text()
    assert (
        html.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in html and html.rstrip().endswith("</html>")
    )
    summary = (folder / "summary.md").read_text()
    assert "trial-0000" in summary and "trial-0001" in summary


def test_no_artifacts_leaves_only_the_config(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(search={**tiny_experiment()["search"], "artifacts": True}))
    study = tune(spec, TuneOptions(progress=False, n_trials=1, artifacts=False))
    names = {a.path for a in _client().list_artifacts(study.trials[0].user_attrs["mlflow_run_id"])}
    assert names == {"config.yaml"}
