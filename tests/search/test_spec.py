"""Non-finite numbers refused by the config models themselves (`lightning_modules.config`); the
experiment file's tests are in tests/search/experiment/."""

from __future__ import annotations

import pytest


def test_non_finite_numbers_are_refused_by_the_config_models_too() -> None:
    from pydantic import ValidationError

    from lightning_modules.config import OptimConfig, TrainerConfig

    with pytest.raises(ValidationError, match="finite number"):
        OptimConfig(lr=float("inf"))
    with pytest.raises(ValidationError, match="finite number"):
        TrainerConfig(gradient_clip_val=float("nan"))
