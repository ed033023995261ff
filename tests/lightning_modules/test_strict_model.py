"""`StrictModel`: unknown keys and non-finite numbers refused; unit intervals checked by name."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from lightning_modules.strict_model import (
    MAX_SEED,
    StrictModel,
    check_open_unit_interval,
    check_unit_interval,
)


class _Section(StrictModel):
    rate: float = 0.5


def test_unknown_keys_and_non_finite_numbers_are_refused() -> None:
    assert _Section().rate == 0.5
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _Section.model_validate({"rate": 0.1, "rtae": 0.2})
    for value in (math.inf, math.nan):
        with pytest.raises(ValidationError, match="finite number"):
            _Section(rate=value)


def test_unit_interval_names_the_field() -> None:
    assert check_unit_interval("dropout", 0.0) == 0.0 and check_unit_interval("dropout", 0.99) == 0.99
    for value in (-0.1, 1.0):
        with pytest.raises(ValueError, match=rf"^dropout must be in \[0, 1\), but got dropout={value}\.$"):
            check_unit_interval("dropout", value)
    assert MAX_SEED == 2**32 - 1
    assert check_open_unit_interval("decay", 0.5) == 0.5
    for value in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"^decay must be in \(0, 1\), but got decay={value}\.$"):
            check_open_unit_interval("decay", value)
