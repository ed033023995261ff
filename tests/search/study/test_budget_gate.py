"""A trial over a budget of the experiment is never trained."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from lightning_modules.module import ClassifierModule
from search.experiment.spec import validate_experiment
from search.study.objective import Objective
from search.study.prepare import prepare_study
from search.study.runner import TuneOptions
from search.study.trial_loop import run_one
from search.tracking import load_settings
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment

WIDTHS = {"model.channels.0": {"choice": [4, 16]}, "model.channels.1": {"choice": [8, 32]}}


def _client() -> MlflowClient:
    settings = load_settings()
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def test_an_over_budget_trial_is_never_trained(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[int] = []
    original = ClassifierModule.training_step
    monkeypatch.setattr(
        ClassifierModule, "training_step", lambda self, *a: steps.append(1) or original(self, *a)
    )
    raw = tiny_experiment()
    raw["search"] |= {"space": WIDTHS, "constraints": {"cost/params": "<= 5000"}}
    spec = validate_experiment(raw)
    prepared = prepare_study(spec, TuneOptions(progress=False))
    study, checked = prepared.study, prepared.checked
    objective = Objective(
        spec,
        prepared.tracker,
        study_name=study.study_name,
        parent_run_id=prepared.parent_run_id,
        data_shape=(checked.in_channels, checked.image_size),
    )
    study.enqueue_trial({"model.channels.0": 16, "model.channels.1": 32})  # 6,138 params
    study.enqueue_trial({"model.channels.0": 4, "model.channels.1": 8})  # 678 params
    for expected_state in (TrialState.PRUNED, TrialState.COMPLETE):
        before = len(steps)
        assert run_one(study, study.ask(), objective) == expected_state
        trained = len(steps) > before
        assert trained == (expected_state == TrialState.COMPLETE)
    over, under = study.get_trials()
    assert over.user_attrs[v.ATTR_OVER_BUDGET] == "cost/params = 6,138 is over cost/params <= 5,000"
    assert over.constraints == pytest.approx({"cost/params": 6138 / 5000 - 1})
    assert under.constraints["cost/params"] < 0
    run = _client().get_run(over.user_attrs[v.ATTR_RUN_ID])
    assert run.data.tags[v.TAG_OVER_BUDGET] == over.user_attrs[v.ATTR_OVER_BUDGET]
    assert run.data.tags["optuna.state"] == "PRUNED" and run.info.status == "FINISHED"
    assert run.data.metrics["cost/params"] == 6138
