"""`search.tracking.callbacks`: a trial's epochs, data and system metrics reach its run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from search.experiment.spec import validate_experiment
from search.study.preflight import preflight
from search.study.runner import TuneOptions, tune
from search.tracking.callbacks import EpochMetricsCallback
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


class _Epochs:
    """What `EpochMetricsCallback` reads from a Lightning Trainer, and the tracker it writes to."""

    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, callback_metrics={})

    def log_epoch(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        self.logged.append((step, metrics))

    def validate(self, epoch: int, accuracy: float) -> None:
        self.trainer.current_epoch = epoch
        self.trainer.callback_metrics = {"val/acc": torch.tensor(accuracy)}


def test_a_pruned_epoch_is_logged_once_and_only_once_it_was_validated() -> None:
    epochs = _Epochs()
    callback = EpochMetricsCallback(epochs, "run")  # type: ignore[arg-type]
    trainer: Any = epochs.trainer
    epochs.validate(0, 0.5)
    callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    epochs.validate(1, 0.6)
    callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
    callback.log_judged_epoch(trainer)  # the pruner stopped epoch 1 at its end
    callback.log_judged_epoch(trainer)
    assert epochs.logged == [(0, {"val/acc": pytest.approx(0.5)}), (1, {"val/acc": pytest.approx(0.6)})]
    trainer.current_epoch = 2  # stopped mid-epoch (the search's end): the metrics are epoch 1's
    callback.log_judged_epoch(trainer)
    assert [step for step, _ in epochs.logged] == [0, 1]
