"""ClassifierModule: optimizers, schedulers, penalties and metrics, on tiny digits runs."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.config import OptimConfig, RunConfig
from lightning_modules.module import ClassifierModule, NonFiniteLossError
from lightning_modules.training import build_run, create_trainer
from tests.helpers.transfer_runs import transfer_config


def _config(**optim: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"dataset": "digits", "batch_size": 128},
            "model": {"name": "convnet", "channels": [8, 16]},
            "optim": {"name": "adamw", "lr": 3e-3, **optim},
            "trainer": {"max_epochs": 2},
        }
    )


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_trains_and_logs_epoch_metrics(name: str) -> None:
    parts = build_run(_config(name=name, lr=0.02 if name == "sgd" else 3e-3))
    trainer = create_trainer(_config().trainer)
    trainer.fit(parts.module, datamodule=parts.datamodule)
    metrics = trainer.callback_metrics
    for key in ("train/loss", "val/loss", "val/acc", "lr", "throughput/img_s"):
        assert key in metrics, key
    assert float(metrics["val/acc"]) > 0.2
    optimizer = trainer.optimizers[0]
    assert (
        type(optimizer).__name__.lower()
        == {"sgd": "sgd", "adam": "adam", "adamw": "adamw", "rmsprop": "rmsprop"}[name]
    )


def test_weight_decay_only_on_weights() -> None:
    parts = build_run(_config(weight_decay=0.1))
    groups = parts.module.parameter_groups()
    decayed = [g for g in groups if g["weight_decay"] > 0]
    assert decayed and all(p.ndim > 1 for g in decayed for p in g["params"])
    assert all(p.ndim == 1 for g in groups if g["weight_decay"] == 0 for p in g["params"])


def test_backbone_lr_scale_gives_the_backbone_its_own_rate() -> None:
    parts = build_run(_config(lr=0.01, backbone_lr_scale=0.1))
    rates = {round(g["lr"], 6) for g in parts.module.parameter_groups()}
    assert rates == {0.01, 0.001}


def test_backbone_lr_scale_reaches_the_convnet_blocks() -> None:
    config = transfer_config()
    config.optim.backbone_lr_scale = 0.1
    parts = build_run(config)
    groups = parts.module.parameter_groups()
    backbone = {id(p) for p in parts.module.model.backbone.parameters()}
    for group in groups:
        in_backbone = {id(p) in backbone for p in group["params"]}
        assert len(in_backbone) == 1
        assert group["lr"] == pytest.approx(0.05 * (0.1 if in_backbone.pop() else 1.0))


@pytest.mark.parametrize(
    ("scheduler", "changes"), [("none", False), ("cosine", True), ("onecycle", True), ("step", True)]
)
def test_schedulers_change_the_learning_rate(scheduler: str, changes: bool) -> None:
    config = _config(scheduler=scheduler, step_size=1, gamma=0.5)
    parts = build_run(config)
    trainer = create_trainer(config.trainer)
    trainer.fit(parts.module, datamodule=parts.datamodule)
    final = trainer.optimizers[0].param_groups[0]["lr"]
    assert (abs(final - 3e-3) > 1e-9) is changes


def test_l1_penalty_shrinks_weights() -> None:
    def total_abs(l1: float) -> float:
        config = _config(l1=l1, lr=1e-2)
        parts = build_run(config)
        create_trainer(config.trainer).fit(parts.module, datamodule=parts.datamodule)
        return sum(float(p.abs().sum()) for p in parts.module.model.parameters() if p.ndim > 1)

    assert total_abs(1e-3) < total_abs(0.0)


def test_label_smoothing_raises_the_loss_floor() -> None:
    module_plain = ClassifierModule(torch.nn.Flatten(), OptimConfig(), num_classes=2, mean=[0.5], std=[0.5])
    module_smooth = ClassifierModule(
        torch.nn.Flatten(), OptimConfig(label_smoothing=0.2), num_classes=2, mean=[0.5], std=[0.5]
    )
    images = torch.full((4, 1, 1, 2), 255, dtype=torch.uint8)
    images[:, 0, 0, 1] = 0
    targets = torch.zeros(4, dtype=torch.long)
    plain, _, _ = module_plain.model_step((images, targets))
    smooth, _, _ = module_smooth.model_step((images, targets))
    assert float(smooth) > float(plain)


def test_diverging_loss_stops_the_run_with_a_clear_error() -> None:
    config = _config(name="sgd", lr=1e6, momentum=0.9)
    config.model.batch_norm = False
    parts = build_run(config)
    with pytest.raises(NonFiniteLossError, match=r"lower optim\.lr"):
        create_trainer(config.trainer).fit(parts.module, datamodule=parts.datamodule)


def test_mismatched_normalization_is_refused() -> None:
    with pytest.raises(ValueError, match="one value per channel"):
        ClassifierModule(torch.nn.Flatten(), OptimConfig(), num_classes=2, mean=[0.5, 0.5], std=[0.5])
