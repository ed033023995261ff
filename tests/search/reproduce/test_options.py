"""`search.reproduce.options`: a --pick budget is parsed once, refused with --trial, and names the alias."""

from __future__ import annotations

import pytest

from search.errors import ConfigError
from search.reproduce.options import ReproduceOptions


def test_champion_without_a_budget() -> None:
    options = ReproduceOptions()
    assert options.budget() is None and options.alias() == "champion"
    assert options.register and options.deadline is None


def test_a_budget_names_its_alias() -> None:
    options = ReproduceOptions(pick="cost/latency_ms <= 2")
    assert options.budget() is not None
    assert options.alias() != "champion" and "latency" in options.alias()


def test_a_malformed_budget_or_one_beside_a_trial_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="give --trial N or --pick BUDGET, not both"):
        ReproduceOptions(trial=3, pick="cost/latency_ms <= 2").budget()
    with pytest.raises(ConfigError, match=r"^--pick: "):
        ReproduceOptions(pick="nonsense").budget()
