"""Dotted keys, `--set`, and the one way from a base config and params to a RunConfig."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from search.errors import ConfigError
from search.experiment.dotted import (
    coerce_numbers,
    config_from_params,
    flatten_config,
    get_dotted,
    parse_override,
    set_dotted,
)
from search.experiment.spec import ExperimentSpec, validate_experiment
from tests.conftest import tiny_experiment


def _spec(space: dict[str, Any]) -> ExperimentSpec:
    return validate_experiment(tiny_experiment(search__space=space))


def test_override_without_equals_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--set expects key=value"):
        parse_override("optim.lr")


def test_per_layer_dotted_key_expands_a_shared_value() -> None:
    tree = {"model": {"channels": [8, 16, 32], "kernel_size": 3}}
    set_dotted(tree, "model.kernel_size.1", 5)
    assert tree["model"]["kernel_size"] == [3, 5, 3]


def test_huge_set_indexes_are_refused_without_building_huge_lists() -> None:
    tree: dict = {"optim": {}}
    with pytest.raises(ConfigError, match="index"):
        set_dotted(tree, "optim.foo.999999999999.bar", 1)


def test_set_inside_a_scalar_is_a_config_error() -> None:
    tree: dict = {"model": {"channels": [8, 16]}, "data": {"val_fraction": 0.2}}
    with pytest.raises(ConfigError, match=r"model\.channels\.0 is 8, not a mapping or list"):
        set_dotted(tree, "model.channels.0.x", 1)
    with pytest.raises(ConfigError, match="not a mapping"):
        set_dotted(tree, "data.val_fraction.deeper", 1)


def test_config_from_params_rebuilds_the_trial_config() -> None:
    spec = _spec({"optim.lr": {"float": [1e-4, 1e-1]}})
    assert config_from_params(spec, {"optim.lr": 0.05}).optim.lr == 0.05


def test_flatten_config_uses_dotted_names() -> None:
    assert flatten_config({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": [1, 2], "d": "x"}


def test_config_from_params_sets_keys_in_their_order_and_validates() -> None:
    spec = _spec({"model.kernel_size": {"choice": [3, 5]}})
    config = config_from_params(spec, {"model.kernel_size": 5, "model.kernel_size.1": 7})
    assert config.model.kernel_size == [5, 7]  # the later per-block key expands the earlier value
    assert config_from_params(spec, {}) == spec.run_config()
    with pytest.raises(ValidationError, match="dropout"):
        config_from_params(spec, {"model.dropout": 2.0})


def test_get_dotted_reads_through_mappings_and_lists() -> None:
    tree = {"model": {"channels": [8, 16], "pool": None}}
    assert get_dotted(tree, "model.channels.1") == 16
    assert get_dotted(tree, "model.channels.2") is None
    assert get_dotted(tree, "model.kernel_size") is None
    assert get_dotted(tree, "model.pool") is None


def test_numbers_written_as_text_become_numbers_inside_lists_and_mappings() -> None:
    assert coerce_numbers({"lr": "1e-3", "sizes": ["8", " 16 "], "name": "e1"}) == {
        "lr": 1e-3,
        "sizes": [8, 16],
        "name": "e1",
    }
    assert parse_override("model.channels=[4, 8]") == ("model.channels", [4, 8])
    assert parse_override("optim.lr=") == ("optim.lr", "")
