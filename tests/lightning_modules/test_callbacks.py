"""`BestWeights`: the best epoch's weights, metrics and predictions, kept in memory and restorable;
`EpochClock`: a training's start-up and epochs, clocked."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.callbacks import BestWeights, EpochClock
from lightning_modules.config import RunConfig
from lightning_modules.training import build_run, create_trainer


def _config() -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"dataset": "digits", "batch_size": 128},
            "model": {"name": "convnet", "channels": [8, 16]},
            "optim": {"name": "adamw", "lr": 3e-3},
        }
    )


def test_best_weights_keeps_the_best_epoch() -> None:
    config = _config()
    config.trainer.max_epochs = 3
    parts = build_run(config)
    best = BestWeights("val/acc", "max")
    create_trainer(config.trainer, callbacks=[best]).fit(parts.module, datamodule=parts.datamodule)
    assert best.best_value is not None and best.best_epoch in (0, 1, 2)
    assert best.best_metrics["val/acc"] == pytest.approx(best.best_value)
    parts.module.model.blocks[0].conv0.weight.data.zero_()
    best.restore(parts.module)
    assert float(parts.module.model.blocks[0].conv0.weight.abs().sum()) > 0


def test_better_follows_the_mode_and_never_nan() -> None:
    highest, lowest = BestWeights("val/acc", "max"), BestWeights("val/loss", "min")
    assert highest.is_better(0.1) and lowest.is_better(5.0)  # anything beats nothing
    highest.best_value, lowest.best_value = 0.5, 0.5
    assert highest.is_better(0.6) and not highest.is_better(0.4)
    assert lowest.is_better(0.4) and not lowest.is_better(0.6)
    assert not highest.is_better(math.nan) and not lowest.is_better(math.nan)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        BestWeights(mode="best")  # type: ignore[arg-type]


def test_the_state_round_trips_for_a_resumed_run() -> None:
    assert BestWeights().state_dict() == {}
    best = BestWeights()
    best.best_value, best.best_epoch, best.best_metrics = 0.75, 2, {"val/acc": 0.75}
    best.best_state = {"w": torch.ones(2)}
    best.best_predictions = (torch.tensor([1, 0]), torch.tensor([0.9, 0.6]))
    again = BestWeights()
    again.load_state_dict(best.state_dict())
    assert (again.best_value, again.best_epoch, again.best_metrics) == (0.75, 2, {"val/acc": 0.75})
    assert again.best_state is not None and torch.equal(again.best_state["w"], torch.ones(2))
    assert again.best_predictions is not None and torch.equal(again.best_predictions[0], torch.tensor([1, 0]))


def test_the_epoch_clock_counts_the_epochs_and_splits_their_time_from_the_start_up() -> None:
    clock = EpochClock()
    assert (clock.epochs, clock.seconds) == (0, 0.0)
    config = _config()
    config.trainer.max_epochs = 2
    parts = build_run(config)
    trainer = create_trainer(config.trainer, callbacks=[clock])
    trainer.fit(parts.module, datamodule=parts.datamodule)
    assert clock.epochs == 2 and clock.train_started is not None
    assert clock.startup > 0 and clock.seconds > 0
    assert clock.created + clock.startup + clock.seconds == pytest.approx(clock.epoch_ends[-1])
