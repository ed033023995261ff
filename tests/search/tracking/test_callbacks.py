"""`search.tracking.callbacks`: a trial's epochs, data and system metrics reach its run."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.experiment.spec import validate_experiment
from search.study.preflight import preflight
from search.study.runner import TuneOptions, tune
from tests.conftest import tiny_experiment
from tests.helpers.parallel_helpers import mlflow_client, trial_runs


def test_every_trial_logs_its_data_and_system_metrics(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("search.tracking.store.SYSTEM_METRICS_INTERVAL", 600)  # a trial shorter than one
    spec = validate_experiment(tiny_experiment(search__n_trials=1))
    sizes = preflight(spec)
    tune(spec, TuneOptions(progress=False))
    client = mlflow_client()
    (run,) = trial_runs(client, "tiny")
    inputs = {entry.dataset.name: entry for entry in run.inputs.dataset_inputs}
    assert set(inputs) == {"digits/train", "digits/val"}
    train, val = inputs["digits/train"], inputs["digits/val"]
    assert {tag.value for tag in train.tags} == {"train"} and train.dataset.digest != val.dataset.digest
    assert f'"images": {sizes.train_size}' in train.dataset.profile
    assert f'"images": {sizes.val_size}' in val.dataset.profile
    assert any(key.startswith("system/") for key in run.data.metrics), sorted(run.data.metrics)
