"""The GPU path of a trial: where its data is held, chosen the same way everywhere.

The CUDA runs (data on the device, channels_last, bf16 autocast) are in tests/e2e/test_gpu_path.py.
"""

from __future__ import annotations

import pytest
import torch

from lightning_modules.config import RunConfig
from lightning_modules.training import build_run, data_device


def test_data_device_stays_on_host_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert data_device("cpu") is None
    assert data_device("auto") is None
    assert data_device("gpu", [0]) is None


def test_data_device_picks_the_trainers_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert data_device("cpu") is None
    assert data_device("auto") == torch.device("cuda", 0)
    assert data_device("gpu") == torch.device("cuda", 0)
    assert data_device("cuda", [3, 1]) == torch.device("cuda", 3)


def test_cpu_run_keeps_its_data_in_host_memory() -> None:
    parts = build_run(RunConfig(data={"dataset": "digits", "batch_size": 64}))
    images, _ = next(iter(parts.datamodule.val_dataloader()))
    assert images.device.type == "cpu"
