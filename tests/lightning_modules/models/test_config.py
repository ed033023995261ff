"""The model configs: per-block lists, freeze modes, dropout and size bounds, unknown keys refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lightning_modules.models.config import BackboneConfig, ConvNetConfig, check_freeze


def test_per_block_fields_take_one_value_or_one_per_block() -> None:
    config = ConvNetConfig(channels=[4, 8, 16], kernel_size=[3, 5, 7], pool="avg")
    assert config.per_layer("kernel_size") == [3, 5, 7] and config.per_layer("pool") == ["avg"] * 3
    with pytest.raises(ValidationError, match="stride has 2 entries but channels has 3 blocks"):
        ConvNetConfig(channels=[4, 8, 16], stride=[1, 2])


@pytest.mark.parametrize("value", ["none", "backbone", "until:layer3", "until:1"])
def test_freeze_modes_are_accepted(value: str) -> None:
    assert check_freeze(value) == value
    assert ConvNetConfig(freeze=value).freeze == value and BackboneConfig(name="vgg16", freeze=value).freeze


@pytest.mark.parametrize("value", ["head", "until:", 3])
def test_other_freeze_values_are_one_line_errors(value: object) -> None:
    with pytest.raises(ValueError, match=r"freeze must be 'none', 'backbone' or 'until:<layer>', but got"):
        check_freeze(value)


def test_bounds_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match=r"dropout must be in \[0, 1\), but got dropout=1.0"):
        ConvNetConfig(dropout=1.0)
    with pytest.raises(ValidationError, match="head_dropout must be in"):
        BackboneConfig(name="resnet18", head_dropout=-0.1)
    with pytest.raises(ValidationError, match="input_size"):
        BackboneConfig(name="resnet18", input_size=4)
    with pytest.raises(ValidationError, match="convs_per_block"):
        ConvNetConfig(convs_per_block=65)
    with pytest.raises(ValidationError, match="kernel"):
        ConvNetConfig(kernel=3)  # type: ignore[call-arg]
