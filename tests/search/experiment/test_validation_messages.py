"""Validation errors as one line: where, what, and which keys are allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lightning_modules.config import RunConfig
from search.errors import ConfigError
from search.experiment.spec import ExperimentSpec, load_experiment
from search.experiment.validation_messages import allowed_keys, describe_validation_error
from tests.conftest import tiny_experiment, write_experiment


def test_unknown_key_names_key_file_and_allowed_keys(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["model"]["chanels"] = [8]
    path = write_experiment(tmp_path, raw)
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    message = str(error.value)
    assert "tiny.yaml" in message
    assert "unknown key 'model.chanels'" in message
    assert "channels" in message and "kernel_size" in message
    assert "\n" not in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["trainr"] = {"max_epochs": 1}
    with pytest.raises(ConfigError, match=r"unknown key 'trainr'.*trainer"):
        load_experiment(write_experiment(tmp_path, raw))


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        ("model", "dropout", 1.2, r"dropout must be in \[0, 1\), but got dropout=1.2"),
        ("optim", "lr", -1, r"optim.lr: Input should be greater than 0"),
        ("data", "val_fraction", 1.5, r"val_fraction must be in \(0, 1\)"),
        ("model", "padding", "full", r"model.padding"),
        ("optim", "name", "adagrad", r"optim.name"),
    ],
)
def test_out_of_bounds_values_are_named(
    tmp_path: Path, section: str, field: str, value: object, expected: str
) -> None:
    raw = tiny_experiment()
    raw[section][field] = value
    with pytest.raises(ConfigError, match=expected):
        load_experiment(write_experiment(tmp_path, raw))


def test_allowed_keys_follow_the_model_family_at_the_location() -> None:
    assert "channels" in allowed_keys(ExperimentSpec, ("model", "convnet"))
    assert "pretrained" in allowed_keys(ExperimentSpec, ("model", "backbone"))
    assert allowed_keys(ExperimentSpec, ("search", "sampler")) == [
        "name",
        "seed",
        "n_startup_trials",
        "multivariate",
        "cost_aware",
    ]
    assert allowed_keys(ExperimentSpec, ("optim", "lr")) == []  # a value, not a section


def test_the_first_problem_is_one_line_that_counts_the_rest() -> None:
    with pytest.raises(ValidationError) as caught:
        RunConfig.model_validate({"optim": {"lr": -1, "weight_decay": -1}, "trainer": {"max_epochs": 0}})
    text = describe_validation_error(caught.value, RunConfig)
    assert text.startswith("optim.lr: Input should be greater than 0 (got -1).")
    assert text.endswith("(and 2 more problems)") and "\n" not in text
