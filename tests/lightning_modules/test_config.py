"""The run config: its sections validated field by field, every error naming the field and value."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from lightning_modules.config import DataConfig, OptimConfig, RunConfig, TrainerConfig, WeightAveragingConfig
from lightning_modules.models.config import BackboneConfig


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "ema", "decay": 1.2}, "decay must be in (0, 1), but got decay=1.2."),
        ({"kind": "swa", "start": 1.0}, "start must be in [0, 1), but got start=1.0."),
        ({"kind": "ema", "lr": 0.1}, "lr applies to kind=swa only, but got kind='ema'."),
        ({"kind": "polyak"}, "Input should be 'none', 'ema' or 'swa'"),
    ],
)
def test_weight_averaging_config_is_validated(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        WeightAveragingConfig.model_validate(values)


def test_bad_images_setting_is_validated() -> None:
    assert DataConfig().bad_images == "skip"
    with pytest.raises(ValueError, match="bad_images"):
        DataConfig(bad_images="ignore")  # type: ignore[arg-type]


def test_data_fractions_and_the_size_a_model_sees() -> None:
    assert DataConfig().input_size((28, 20)) == (28, 20)
    assert DataConfig(image_size=32).input_size((28, 20)) == (32, 32)
    with pytest.raises(ValidationError, match=r"val_fraction must be in \(0, 1\), but got val_fraction=1.0"):
        DataConfig(val_fraction=1.0)
    with pytest.raises(ValidationError, match=r"train_fraction must be in \(0, 1\], but got train_fr"):
        DataConfig(train_fraction=0.0)


def test_optimizer_and_trainer_rules() -> None:
    with pytest.raises(ValidationError, match=r"nesterov needs optim\.name=sgd and momentum > 0"):
        OptimConfig(name="adam", nesterov=True)
    assert OptimConfig(name="sgd", nesterov=True).nesterov
    assert TrainerConfig.model_validate({"precision": 32}).precision == "32"  # YAML's 32 is an int
    with pytest.raises(ValidationError, match="precision"):
        TrainerConfig.model_validate({"precision": 16})  # 16 alone is no Lightning precision
    assert WeightAveragingConfig(kind="swa").start_fraction == 0.75
    assert WeightAveragingConfig(kind="ema").start_fraction == 0.0


def test_run_config_sections() -> None:
    config = RunConfig.model_validate({"seed": 3, "model": {"name": "resnet18"}})
    assert isinstance(config.model, BackboneConfig) and config.data.dataset == "digits"
    with pytest.raises(ValidationError, match=r"augment\[1\] must name exactly one transform"):
        RunConfig.model_validate({"augment": [{"HorizontalFlip": None}, {"Blur": None, "GaussNoise": None}]})
    with pytest.raises(ValidationError, match="seed"):
        RunConfig(seed=2**32)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RunConfig.model_validate({"optimizer": {}})


def test_non_finite_numbers_are_refused_by_the_config_models_too() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        OptimConfig(lr=float("inf"))
    with pytest.raises(ValidationError, match="finite number"):
        TrainerConfig(gradient_clip_val=float("nan"))
