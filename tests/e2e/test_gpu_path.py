"""The GPU path of a trial: data held on the device, channels_last, bf16 autocast (run only where a GPU
is visible); the device choice itself is tested everywhere (tests/lightning_modules/test_training.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import pytorch_lightning as pl
import torch

from lightning_modules.config import RunConfig
from lightning_modules.training import build_run, create_trainer, data_device
from search.experiment.spec import validate_experiment
from search.study.objective import Objective, TrialSettings
from search.tracking import Tracker, load_settings
from tests.conftest import tiny_experiment

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class BatchProbe(pl.Callback):
    """Records where training batches and the model's input live, and in which dtype the model ran."""

    def __init__(self) -> None:
        self.batch_devices: set[str] = set()
        self.input_channels_last: list[bool] = []
        self.logit_dtypes: set[torch.dtype] = set()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.batch_devices.add(batch[0].device.type)
        x = pl_module.prepare(batch[0])
        self.input_channels_last.append(x.is_contiguous(memory_format=torch.channels_last))
        with trainer.precision_plugin.forward_context():
            self.logit_dtypes.add(pl_module(batch[0]).dtype)


@needs_cuda
def test_gpu_run_trains_from_device_memory_in_bf16_channels_last() -> None:
    config = RunConfig(
        data={"dataset": "digits", "batch_size": 64},
        model={"name": "convnet", "channels": [8, 16]},
        trainer={"max_epochs": 1, "accelerator": "gpu", "precision": "bf16-mixed"},
    )
    parts = build_run(config, device=data_device("gpu"))
    assert parts.datamodule.val_dataloader().device.type == "cuda"
    probe = BatchProbe()
    trainer = create_trainer(config.trainer, callbacks=[probe])
    trainer.fit(parts.module, datamodule=parts.datamodule)
    assert probe.batch_devices == {"cuda"}
    assert all(probe.input_channels_last)
    assert probe.logit_dtypes == {torch.bfloat16}
    assert 0.0 <= float(trainer.callback_metrics["val/acc"]) <= 1.0


@needs_cuda
def test_gpu_trial_through_the_objective_uses_device_data(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 1, "precision": "bf16-mixed"}))
    tracker = Tracker(load_settings())
    study = optuna.create_study(direction="maximize")
    probe = BatchProbe()
    settings = TrialSettings(device="cuda:0", accelerator="gpu", artifacts=False)
    settings.extra_callbacks = [lambda trial: probe]
    objective = Objective(
        spec,
        tracker,
        study_name="gpu",
        parent_run_id=tracker.study_run("gpu"),
        data_shape=(1, (8, 8)),
        settings=settings,
    )
    trial = study.ask()
    value = objective(trial)
    assert 0.0 <= value <= 1.0
    assert probe.batch_devices == {"cuda"}
    assert objective.last_parts is not None
    assert objective.last_parts.datamodule.val_dataloader().device.type == "cuda"
