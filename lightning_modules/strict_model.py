"""`StrictModel`: the base of every config section, and the bounds that several sections share.

Unknown keys are refused, numbers are bounded, and every error names the field and the value it got.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MAX_SEED = 2**32 - 1  # what NumPy and Lightning's seed_everything accept
MAX_IMAGE_SIZE = 4096


class StrictModel(BaseModel):
    """Unknown keys refused; `.inf` and `.nan` are no number any setting means."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


def check_unit_interval(name: str, value: float) -> float:
    """`value` if it lies in [0, 1); else a `ValueError` naming `name`."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), but got {name}={value}.")
    return value


def check_open_unit_interval(name: str, value: float) -> float:
    """`value` if it lies in (0, 1); else a `ValueError` naming `name`."""
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), but got {name}={value}.")
    return value


def check_closed_unit_interval(name: str, value: float) -> float:
    """`value` if it lies in [0, 1]; else a `ValueError` naming `name`."""
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], but got {name}={value}.")
    return value
