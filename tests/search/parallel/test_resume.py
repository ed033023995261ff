"""Resume, not restart: a retried trial continues from its last checkpointed epoch
(search.parallel.resume)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
import pytorch_lightning as pl
import torch
from optuna.trial import TrialState

from lightning_modules.resume import read_checkpoint
from search.cli.main import main
from search.experiment.spec import ExperimentSpec, validate_experiment
from search.parallel.checkpoints import CheckpointStore
from search.parallel.heartbeat import TrialGuard
from search.parallel.resume import config_digest
from search.study.objective import Objective, TrialSettings
from search.study.prepare import PreparedStudy, prepare_study
from search.study.runner import TuneOptions
from search.study.stopping import TrialInterrupted
from search.study.trial_loop import run_worker
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client

EPOCHS = 4


def _spec(**changes: Any) -> ExperimentSpec:
    raw = tiny_experiment(
        trainer__max_epochs=EPOCHS, trainer__deterministic=True, search__n_trials=1, **changes
    )
    raw["model"]["dropout"] = 0.3  # uses the RNG every batch: a resumed run must restore it
    raw["optim"]["scheduler"] = "onecycle"  # a step-wise schedule: the scheduler's state must come back
    return validate_experiment(raw)


class InterruptAfter(pl.Callback):
    """Stops the trial like SIGTERM does, once `epochs` epochs are finished (and checkpointed)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 == self.epochs:
            raise TrialInterrupted("the worker was asked to stop")


class EpochsStarted(pl.Callback):
    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seen.append(trainer.current_epoch)


def _run(prepared: PreparedStudy, spec: ExperimentSpec, callbacks: list[Any]) -> None:
    settings = TrialSettings(artifacts=False, system_metrics=False, extra_callbacks=callbacks)
    objective = Objective(
        spec,
        prepared.tracker,
        study_name=prepared.study.study_name,
        parent_run_id=prepared.parent_run_id,
        data_shape=(prepared.checked.in_channels, prepared.checked.image_size),
        settings=settings,
    )
    guard = TrialGuard(prepared.tracker, spec.search.max_retries)
    run_worker(prepared.study, prepared.handle, objective, n_trials=1, guard=guard)


def _history(run_id: str, metric: str = "val/acc") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow_client().get_metric_history(run_id, metric))


def test_a_retried_trial_resumes_after_its_last_epoch_and_ends_exactly_as_an_uninterrupted_one(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec()
    plain = prepare_study(spec, TuneOptions(progress=False, study_name="plain"))
    _run(plain, spec, [])
    (whole,) = plain.study.get_trials()

    broken = prepare_study(spec, TuneOptions(progress=False, study_name="broken"))
    store = CheckpointStore.for_study("broken", broken.tracker)
    with pytest.raises(TrialInterrupted):
        _run(broken, spec, [lambda trial: InterruptAfter(2)])
    interrupted, waiting = broken.study.get_trials()
    assert interrupted.state == TrialState.FAIL and waiting.state == TrialState.WAITING
    run_id = interrupted.user_attrs["mlflow_run_id"]
    (kept,) = store.files()
    assert kept == store.path(run_id)
    checkpoint = read_checkpoint(kept)  # weights_only=True
    assert checkpoint["convtune"]["epochs"] == 2 and checkpoint["convtune"]["run_id"] == run_id

    path = write_experiment(workdir, spec.model_dump(mode="json", by_alias=True))
    assert main(["status", str(path), "--study", "broken"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"trial 1 (retry of trial 0) resumes after epoch 2 of {EPOCHS}" in shown

    started: list[int] = []
    _run(broken, spec, [lambda trial: EpochsStarted(started)])
    first, retry = broken.study.get_trials()
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert started == [2, 3]  # epochs 1 and 2 were not trained again
    assert retry.user_attrs["resumed_at_epoch"] == 2 and retry.user_attrs["epochs_trained"] == 2
    assert retry.user_attrs["mlflow_run_id"] == run_id  # the same run goes on
    assert retry.value == whole.value
    assert retry.intermediate_values == whole.intermediate_values  # every epoch reported once, in the retry
    assert _history(run_id) == _history(whole.user_attrs["mlflow_run_id"])
    assert _history(run_id, "train/loss") == _history(whole.user_attrs["mlflow_run_id"], "train/loss")
    run = mlflow_client().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
    assert run.data.tags["optuna.trial_number"] == "1" and run.data.tags["convtune.trials"] == "0,1"
    assert run.data.tags["convtune.resumed"] == "after epoch 2 (trial 0 -> trial 1)"
    assert "convtune.error" not in run.data.tags
    assert store.files() == []  # finished: its checkpoint is gone


@pytest.mark.parametrize("damage", ["truncated", "other-config"])
def test_an_unusable_checkpoint_is_ignored_with_a_warning_and_the_trial_restarts(
    workdir: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spec = _spec()
    prepared = prepare_study(spec, TuneOptions(progress=False))
    store = CheckpointStore.for_study("tiny", prepared.tracker)
    with pytest.raises(TrialInterrupted):
        _run(prepared, spec, [lambda trial: InterruptAfter(1)])
    (path,) = store.files()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["convtune"]["config"] = "0" * 32
        torch.save(checkpoint, path)
    started: list[int] = []
    with caplog.at_level(logging.WARNING, logger="search.parallel.resume"):
        _run(prepared, spec, [lambda trial: EpochsStarted(started)])
    assert "checkpoint ignored" in caplog.text and "starts from epoch 1" in caplog.text
    retry = prepared.study.get_trials()[1]
    assert retry.state == TrialState.COMPLETE and "resumed_at_epoch" not in retry.user_attrs
    assert started == list(range(EPOCHS))
    assert store.files() == []


def test_checkpoints_off_restarts_retries_and_writes_no_file(workdir: Path) -> None:
    spec = _spec(search__checkpoints=False)
    prepared = prepare_study(spec, TuneOptions(progress=False))
    with pytest.raises(TrialInterrupted):
        _run(prepared, spec, [lambda trial: InterruptAfter(1)])
    assert CheckpointStore.for_study("tiny", prepared.tracker).files() == []


def test_retries_used_up_remove_the_checkpoint(workdir: Path) -> None:
    spec = _spec(search__max_retries=0)
    prepared = prepare_study(spec, TuneOptions(progress=False))
    with pytest.raises(TrialInterrupted):
        _run(prepared, spec, [lambda trial: InterruptAfter(1)])
    assert [t.state for t in prepared.study.get_trials()] == [TrialState.FAIL]
    assert CheckpointStore.for_study("tiny", prepared.tracker).files() == []


def test_a_pruned_retry_removes_its_checkpoint_and_the_pruner_judged_the_replayed_epochs(
    workdir: Path,
) -> None:
    spec = _spec()
    prepared = prepare_study(spec, TuneOptions(progress=False))
    with pytest.raises(TrialInterrupted):
        _run(prepared, spec, [lambda trial: InterruptAfter(2)])
    prepared.study.pruner = _PruneAtStep(1)
    _run(prepared, spec, [])
    retry = prepared.study.get_trials()[1]
    assert retry.state == TrialState.PRUNED and retry.intermediate_values.keys() == {1}
    assert CheckpointStore.for_study("tiny", prepared.tracker).files() == []


class _PruneAtStep(optuna.pruners.BasePruner):
    def __init__(self, step: int) -> None:
        self.step = step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step == self.step


def test_the_config_digest_ignores_how_batches_are_loaded_but_not_what_is_trained() -> None:
    config = validate_experiment(tiny_experiment()).run_config()
    loaded_otherwise = config.model_copy(update={"data": config.data.model_copy(update={"num_workers": 3})})
    trained_otherwise = config.model_copy(update={"seed": config.seed + 1})
    assert config_digest(loaded_otherwise) == config_digest(config) != config_digest(trained_otherwise)
