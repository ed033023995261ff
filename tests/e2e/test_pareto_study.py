"""Budgets and Pareto studies end to end on digits: real Optuna studies, MLflow runs, tiny trainings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from mlflow import MlflowClient
from optuna.trial import TrialState
from PIL import Image

from search.cli.main import main
from search.experiment.budgets import parse_budget
from search.experiment.spec import validate_experiment
from search.study.pareto import alias_for, front, pick
from search.study.runner import TuneOptions, tune
from search.tracking import load_settings
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment, write_experiment

WIDTHS = {"model.channels.0": {"choice": [4, 16]}, "model.channels.1": {"choice": [8, 32]}}


def _client() -> MlflowClient:
    settings = load_settings()
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def pareto_experiment(**search: Any) -> dict[str, Any]:
    raw = tiny_experiment(name="tiny-pareto")
    raw["trainer"]["max_epochs"] = 3
    raw["search"] |= {
        "n_trials": 6,
        "artifacts": True,  # the study's plots; TuneOptions(artifacts=False) skips the trials' pictures
        "objectives": [{"metric": "val/acc"}, {"metric": "cost/params"}],
        "pruner": {"name": "pareto", "n_warmup_steps": 0, "n_startup_trials": 1},
        "space": {**WIDTHS, "optim.lr": {"float": [1e-3, 1e-2], "log": True}},
        **search,
    }
    return raw


@dataclass
class ParetoStudy:
    folder: Path
    experiment: Path
    study: optuna.Study


@pytest.fixture(scope="module")
def pareto_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParetoStudy]:
    """A 6-trial Pareto study of val/acc against cost/params on digits, tuned once for the module."""
    folder = tmp_path_factory.mktemp("pareto")
    store = "sqlite:///mlflow.db"
    (folder / "mlflow.yml").write_text(f"tracking_uri: {store}\nregistry_uri: {store}\n")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CONVTUNE_MLFLOW_CONFIG"):
            patch.delenv(name, raising=False)
        torch.set_num_threads(1)  # tiny nets: one thread is fastest, and the machine is shared
        try:
            raw = pareto_experiment()
            study = tune(validate_experiment(raw), TuneOptions(progress=False, artifacts=False))
            yield ParetoStudy(folder, write_experiment(folder, raw), study)
        finally:
            torch.set_num_threads(threads)


@pytest.fixture
def in_study(pareto_study: ParetoStudy, monkeypatch: pytest.MonkeyPatch) -> ParetoStudy:
    monkeypatch.chdir(pareto_study.folder)
    return pareto_study


def test_a_pareto_study_records_costs_and_leaves_the_front_on_its_run(in_study: ParetoStudy) -> None:
    study, client = in_study.study, _client()
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    assert completed
    for trial in completed:
        assert trial.values[1] == trial.user_attrs["cost/params"]
        assert len(trial.user_attrs[v.ATTR_CURVE]) == 3
        metrics = client.get_run(trial.user_attrs[v.ATTR_RUN_ID]).data.metrics
        assert metrics["cost/params"] == trial.values[1] and metrics["cost/latency_ms"] > 0
    on_front = sorted(t.number for t in front(study))
    parent = client.get_run(study.user_attrs[v.STUDY_ATTR_PARENT_RUN])
    assert parent.data.tags[v.TAG_FRONT_TRIALS] == ",".join(map(str, on_front))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.md", "pareto_front.html", "pareto_front_cost_params.png", "summary.md"} <= artifacts
    table = Path(client.download_artifacts(parent.info.run_id, "pareto_front.md")).read_text()
    assert [int(line[8:12]) for line in table.splitlines() if line.startswith("| trial-")] == sorted(
        on_front, key=lambda n: (study.trials[n].values[1], n)
    )
    html = Path(client.download_artifacts(parent.info.run_id, "pareto_front.html")).read_text()
    assert "Pareto front: val" in html and "against cost" in html and "plotly" in html
    for trial in completed:
        tag = client.get_run(trial.user_attrs[v.ATTR_RUN_ID]).data.tags[v.TAG_ON_FRONT]
        assert tag == str(trial.number in on_front).lower()


def test_status_marks_the_front(in_study: ParetoStudy, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(in_study.experiment)]) == 0
    out = capsys.readouterr().out
    on_front = sorted(t.number for t in front(in_study.study))
    assert (
        f"Pareto front (val/acc against cost/params; marked *): trials {', '.join(map(str, on_front))}" in out
    )
    assert "front" in out


def test_reproduce_pick_registers_the_best_trial_within_the_budget_beside_the_champion(
    in_study: ParetoStudy, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = in_study.study
    cheapest = front(study)[0]
    budget = f"cost/params <= {int(cheapest.values[1])}"
    expected = pick(study, parse_budget(budget))
    assert main(["reproduce", str(in_study.experiment), "--pick", budget]) == 0
    out = capsys.readouterr().out
    alias = alias_for(parse_budget(budget))
    assert f"trial {expected.number}: val/acc" in out and f"models:/tiny-pareto@{alias}" in out
    assert "cost: params" in out
    assert main(["reproduce", str(in_study.experiment)]) == 0
    client = _client()
    picked = client.get_model_version_by_alias("tiny-pareto", alias)
    champion = client.get_model_version_by_alias("tiny-pareto", "champion")
    assert picked.version != champion.version
    assert picked.tags[v.MODEL_TAG_PICK] == str(parse_budget(budget))
    assert float(picked.tags["cost/params"]) == cheapest.values[1]
    image = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(image)
    out_dir = tmp_path / "explained"
    args = [
        "explain",
        "models:/tiny-pareto@champion",
        str(image),
        "--compare",
        f"models:/tiny-pareto@{alias}",
    ]
    assert main([*args, "--out", str(out_dir)]) == 0
    comparison = (out_dir / "comparison.md").read_text()
    assert "(the cheaper)" in comparison and "receptive field of the last conv" in comparison
    assert (out_dir / "compare_filters.png").is_file() and (out_dir / "compare" / "gradcam.png").is_file()


def test_pick_and_trial_together_are_refused(
    in_study: ParetoStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["reproduce", str(in_study.experiment), "--pick", "cost/params <= 9", "--trial", "0"]
    assert main(args) == 2
    assert "give --trial N or --pick BUDGET, not both" in capsys.readouterr().err
    assert main(["reproduce", str(in_study.experiment), "--pick", "cost/params <= 9"]) == 1
    assert "fits cost/params <= 9 (the cheapest is trial" in capsys.readouterr().err


# --- a single objective is what it was -------------------------------------------------------------


def test_measuring_cost_leaves_a_single_objective_study_as_it_was(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = validate_experiment(tiny_experiment())
    measured = tune(spec, TuneOptions(progress=False, study_name="measured"))
    assert len(measured.directions) == 1
    assert all("cost/latency_ms" in t.user_attrs and not t.constraints for t in measured.trials)
    monkeypatch.setattr("search.study.objective.record_cost", lambda *args, **kwargs: {})
    plain = tune(spec, TuneOptions(progress=False, study_name="plain"))
    assert [t.value for t in plain.trials] == [t.value for t in measured.trials]
    assert [t.intermediate_values for t in plain.trials] == [t.intermediate_values for t in measured.trials]
