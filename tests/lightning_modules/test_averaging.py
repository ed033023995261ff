"""Weight averaging (EMA, SWA): averaged weights are validated and kept; batch norms recomputed for SWA."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from lightning_modules.averaging import AveragedWeights, ema_decay, recompute_batch_norm
from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.training import build_run, create_trainer


def _config(**averaging: Any) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"dataset": "digits", "batch_size": 64},
            "model": {"name": "convnet", "channels": [8, 16]},
            "optim": {"name": "adamw", "lr": 3e-3},
            "trainer": {"max_epochs": 2, "weight_averaging": averaging},
        }
    )


class RawWeightsAtEnd(pl.Callback):
    """Keeps the raw weights as training ends, before the averaging callback (last) swaps them out."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}
        self.validated: list[dict[str, torch.Tensor]] = []

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state = copy.deepcopy(pl_module.model.state_dict())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validated.append(copy.deepcopy(pl_module.model.state_dict()))


def _fit(config: RunConfig) -> tuple[Any, pl.Trainer, RawWeightsAtEnd, BestWeights]:
    parts = build_run(config)
    raw, best = RawWeightsAtEnd(), BestWeights()
    trainer = create_trainer(config.trainer, callbacks=[best, raw])
    trainer.fit(parts.module, datamodule=parts.datamodule)
    return parts, trainer, raw, best


def _averager(trainer: pl.Trainer) -> AveragedWeights:
    (callback,) = [c for c in trainer.callbacks if isinstance(c, AveragedWeights)]  # type: ignore[attr-defined]
    return callback


def _differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[key], b[key]) for key in a if a[key].is_floating_point())


@pytest.mark.parametrize("kind", ["ema", "swa"])
def test_averaged_weights_differ_from_the_raw_ones_and_are_validated_and_kept(kind: str) -> None:
    options = {"kind": kind, "decay": 0.9} if kind == "ema" else {"kind": kind, "start": 0.25}
    parts, trainer, raw, best = _fit(_config(**options))
    averaged = _averager(trainer)
    final = parts.module.model.state_dict()
    assert _differs(final, raw.state), "the averaged weights equal the raw ones"
    expected = {k[len("model.") :]: v for k, v in averaged._average_model.module.state_dict().items()}  # type: ignore[union-attr]
    for key, value in final.items():
        assert torch.equal(value, expected[key].to(value.device)), key
    assert averaged.averaged_epochs == {0, 1}
    # the last validation saw the averaged weights, and the best epoch's saved state is those weights
    assert all(torch.equal(v, raw.validated[-1][k]) for k, v in final.items())
    assert best.best_state is not None
    best_model = {k[len("model.") :]: v for k, v in best.best_state.items() if k.startswith("model.")}
    assert any(all(torch.equal(best_model[k], state[k]) for k in best_model) for state in raw.validated)


def test_swa_recomputes_batch_norm_statistics_for_the_averaged_weights() -> None:
    parts, _, raw, _ = _fit(_config(kind="swa", start=0.5))
    final = {k: v.clone() for k, v in parts.module.model.state_dict().items()}
    assert not torch.equal(final["blocks.0.bn0.running_mean"], raw.state["blocks.0.bn0.running_mean"])
    parts.module.eval()
    images = parts.datamodule.train_images
    size = parts.datamodule.eval_batch_size
    recompute_batch_norm(parts.module, iter([images[i : i + size] for i in range(0, len(images), size)]))
    recomputed = parts.module.model.state_dict()
    for key in ("blocks.0.bn0.running_mean", "blocks.0.bn0.running_var", "blocks.1.bn0.running_var"):
        assert torch.allclose(final[key], recomputed[key], atol=1e-5), key


def test_swa_before_its_start_validates_the_raw_weights() -> None:
    _, trainer, _, _ = _fit(_config(kind="swa", start=0.9))
    averaged = _averager(trainer)
    assert averaged.averaged_epochs == {1}
    assert averaged.first_step > len(trainer.train_dataloader)  # type: ignore[arg-type]


def test_swa_lr_holds_the_learning_rate_from_its_start() -> None:
    config = _config(kind="swa", start=0.5, lr=0.0123)
    config.optim.scheduler = "cosine"
    _, trainer, _, _ = _fit(config)
    assert float(trainer.callback_metrics["lr"]) == pytest.approx(0.0123)


def test_ema_decay_warms_up() -> None:
    assert ema_decay(0.999, 1, warmup=True) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 10**6, warmup=True) == 0.999
    assert ema_decay(0.9, 1, warmup=False) == 0.9


def test_no_averaging_adds_no_callback() -> None:
    trainer = create_trainer(_config().trainer)
    assert not [c for c in trainer.callbacks if isinstance(c, AveragedWeights)]  # type: ignore[attr-defined]
