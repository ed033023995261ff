"""One trial through the objective: infeasible and pruned trials are recorded as such."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.experiment.spec import ExperimentSpec, validate_experiment
from search.study.objective import Objective
from search.study.prepare import PreparedStudy, prepare_study
from search.study.runner import TuneOptions
from search.study.trial_loop import run_worker
from search.tracking import load_settings
from tests.conftest import AlwaysPrune, tiny_experiment


def _client() -> MlflowClient:
    settings = load_settings()
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def _objective(spec: ExperimentSpec, prepared: PreparedStudy) -> Objective:
    checked = prepared.checked
    return Objective(
        spec,
        prepared.tracker,
        study_name=prepared.study.study_name,
        parent_run_id=prepared.parent_run_id,
        data_shape=(checked.in_channels, checked.image_size),
    )


def test_pruned_trial_is_tagged_pruned_not_failed(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment())
    prepared = prepare_study(spec, TuneOptions(progress=False))
    study, handle = prepared.study, prepared.handle
    study.pruner = AlwaysPrune()
    run_worker(study, handle, _objective(spec, prepared), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED
    run = _client().get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["optuna.state"] == "PRUNED"
    assert run.info.status == "FINISHED"
    assert "pruned after epoch 1 of 2" in run.data.tags["convtune.pruned_reason"]
    # the epoch the pruner judged is the last point of the run's curve, with the value it judged
    history = _client().get_metric_history(run.info.run_id, "val/acc")
    assert [(m.step, m.value) for m in history] == [(0, pytest.approx(trial.intermediate_values[1]))]


def test_infeasible_trial_is_recorded_with_its_reason(workdir: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"model.stride": {"choice": [1, 4]}}
    spec = validate_experiment(raw)
    prepared = prepare_study(spec, TuneOptions(progress=False))
    study, handle = prepared.study, prepared.handle
    study.enqueue_trial({"model.stride": 4})
    run_worker(study, handle, _objective(spec, prepared), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED
    reason = trial.user_attrs["infeasible_reason"]
    assert "1x1" in reason or "below" in reason
    run = _client().get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["convtune.infeasible"] == reason[:500]
    assert run.data.tags["optuna.state"] == "PRUNED"
