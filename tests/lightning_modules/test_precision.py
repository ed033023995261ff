"""`trainer.precision: auto`: resolved per device, and a bf16 run on CPU trains and reproduces."""

from __future__ import annotations

import pytest
import torch

from lightning_modules import precision
from lightning_modules.config import RunConfig
from lightning_modules.precision import resolve_precision
from lightning_modules.training import build_run, create_trainer


@pytest.mark.parametrize("explicit", ["32", "16-mixed", "bf16-mixed", "64"])
def test_explicit_precision_is_kept(explicit: str) -> None:
    assert resolve_precision(explicit, "cpu") == explicit
    assert resolve_precision(explicit, "gpu") == explicit


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32")])
def test_auto_on_cpu_follows_bf16_instructions(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_on_gpu_prefers_bf16_then_fp16(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert resolve_precision("auto", "gpu") == expected
    assert resolve_precision("auto", "auto") == expected


def test_auto_on_mps_is_full_precision() -> None:
    assert resolve_precision("auto", "mps") == "32"


def test_unknown_precision_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="auto"):
        RunConfig.model_validate({"trainer": {"precision": "bf32"}})


def _bf16_config() -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"dataset": "digits", "batch_size": 128},
            "model": {"name": "convnet", "channels": [8, 16]},
            "optim": {"name": "adamw", "lr": 3e-3},
            "trainer": {"max_epochs": 2, "precision": "auto", "accelerator": "cpu"},
        }
    )


def _val_acc_after_training() -> tuple[str, float]:
    config = _bf16_config()
    parts = build_run(config)
    trainer = create_trainer(config.trainer)
    trainer.fit(parts.module, datamodule=parts.datamodule)
    return str(trainer.precision), float(trainer.callback_metrics["val/acc"])


@pytest.mark.skipif(not precision.cpu_has_native_bf16(), reason="this CPU has no bf16 instructions")
def test_auto_trains_in_bf16_on_a_bf16_cpu_and_repeats_exactly() -> None:
    used, first = _val_acc_after_training()
    _, second = _val_acc_after_training()
    assert used == "bf16-mixed"
    assert first > 0.5
    assert first == second
