"""One dimension of the search space: exactly one kind, a valid range, what is worth checking."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from search.errors import ConfigError
from search.experiment.param_spec import ParamSpec
from search.experiment.spec import load_experiment
from tests.conftest import tiny_experiment, write_experiment


def test_space_needs_exactly_one_kind(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"optim.lr": {"float": [0.1, 0.2], "choice": [0.1]}}
    with pytest.raises(ConfigError, match="exactly one of float, int or choice"):
        load_experiment(write_experiment(tmp_path, raw))


def test_log_range_needs_positive_low(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"optim.weight_decay": {"float": [0, 0.1], "log": True}}
    with pytest.raises(ConfigError, match="log range needs low > 0"):
        load_experiment(write_experiment(tmp_path, raw))


def test_candidates_are_every_choice_or_the_ends_of_a_range() -> None:
    assert ParamSpec.model_validate({"choice": [3, 5, 7]}).candidates() == [3, 5, 7]
    assert ParamSpec.model_validate({"float": [1e-4, 1e-1], "log": True}).candidates() == [1e-4, 1e-1]
    assert ParamSpec.model_validate({"int": [4, 4]}).candidates() == [4]


def test_a_dimension_describes_itself_in_one_line() -> None:
    param = ParamSpec.model_validate({"float": [0.5, 0.9], "step": 0.1, "when": {"optim.name": "sgd"}})
    assert param.kind == "float"
    assert param.describe() == "float [0.5, 0.9] step 0.1 when optim.name=sgd"
    assert ParamSpec.model_validate({"choice": ["max", "avg"]}).describe() == "choice max, avg"
    with pytest.raises(ValidationError, match="log and step apply to float and int ranges"):
        ParamSpec.model_validate({"choice": [1, 2], "log": True})
