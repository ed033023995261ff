"""Budgets, objectives and the cost of a network, without training."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lightning_modules.config import RunConfig
from lightning_modules.models.registry import model_from_config
from search.errors import ConfigError
from search.experiment.budgets import Budget, over_budget, parse_budget, parse_limit, violations
from search.experiment.spec import validate_experiment
from search.study.model_cost import measure_cost, static_cost
from search.study.pareto import alias_for
from tests.conftest import tiny_experiment


@pytest.mark.parametrize(
    ("expression", "limit", "strict"),
    [
        ("<= 100000", 100000, False),
        ("<2", 2, True),
        (5e4, 5e4, False),
        ("1e5", 1e5, False),
        (" <= 0.5 ", 0.5, False),
    ],
)
def test_budgets_parse(expression: Any, limit: float, strict: bool) -> None:
    assert parse_limit("cost/params", expression) == Budget("cost/params", limit, strict)


@pytest.mark.parametrize(
    ("metric", "expression", "message"),
    [
        ("cost/flops", "<= 3", r"unknown cost metric 'cost/flops'; use one of cost/params, cost/macs"),
        ("cost/params", ">= 3", r'cost/params: a budget is "<= NUMBER" or "< NUMBER".*but got \'>= 3\''),
        ("cost/params", "<= -1", r"limit must be a positive number, but got -1"),
        ("cost/params", True, r"a budget is .* but got True"),
    ],
)
def test_bad_budgets_say_what_to_write(metric: str, expression: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_limit(metric, expression)


def test_violation_is_relative_so_budgets_of_different_units_add_up() -> None:
    params, latency = Budget("cost/params", 1000), Budget("cost/latency_ms", 2, strict=True)
    costs = {"cost/params": 1500.0, "cost/latency_ms": 2.0}
    assert violations([params, latency], costs) == pytest.approx(
        {"cost/params": 0.5, "cost/latency_ms": 1e-9}
    )
    assert violations([params], {"cost/params": 500.0}) == {"cost/params": -0.5}
    assert over_budget([params, latency], costs) == (
        "cost/params = 1,500 is over cost/params <= 1,000; cost/latency_ms = 2 is over cost/latency_ms < 2"
    )
    assert over_budget([params], {"cost/params": 1000.0}) is None


def test_pick_expressions_parse() -> None:
    assert parse_budget("cost/latency_ms <= 2") == Budget("cost/latency_ms", 2.0)
    assert parse_budget("cost/params<20000") == Budget("cost/params", 20000.0, strict=True)
    with pytest.raises(ValueError, match=r"METRIC <= NUMBER, like 'cost/latency_ms <= 2', but got 'fast'"):
        parse_budget("fast")


@pytest.mark.parametrize(
    ("budget", "alias"),
    [
        ("cost/latency_ms <= 2", "latency-2ms"),
        ("cost/latency_ms_batch <= 0.05", "latency-batch-0p05ms"),
        ("cost/params <= 100000", "params-100k"),
        ("cost/macs <= 2500000", "macs-2p5m"),
        ("cost/size_bytes < 400000", "size-lt-400kb"),
    ],
)
def test_aliases_say_the_budget_and_satisfy_mlflow(budget: str, alias: str) -> None:
    assert alias_for(parse_budget(budget)) == alias
    assert re.fullmatch(r"[\w\-]+", alias) and not re.fullmatch(r"[vV]\d+", alias)


def _load(**search: Any) -> Any:
    raw = tiny_experiment()
    raw["search"].update(search)
    return validate_experiment(raw).search


PARETO = [{"metric": "val/acc"}, {"metric": "cost/latency_ms"}]


def test_a_pareto_study_follows_its_first_objective_and_prunes_with_the_pareto_rule() -> None:
    search = _load(objectives=PARETO, pruner={"n_warmup_steps": 0})
    assert search.is_pareto and search.metric == "val/acc"
    assert search.directions == ["maximize", "minimize"]
    assert search.cost_objectives == ["cost/latency_ms"]
    assert search.pruner.name == "pareto" and search.pruner.n_warmup_steps == 0
    single = _load()
    assert not single.is_pareto and single.directions == ["maximize"] and single.cost_objectives == []


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"constraints": {"cost/flops": "<= 1"}}, r"search.constraints: unknown cost metric 'cost/flops'"),
        ({"constraints": {"cost/params": "about 5"}}, r"search.constraints: cost/params: a budget is"),
        ({"objectives": [{"metric": "cost/params"}, {"metric": "val/acc"}]}, r"list the training metric"),
        ({"objectives": [{"metric": "val/acc"}]}, r"list the training metric .* but got \['val/acc'\]"),
        ({"objectives": [*PARETO, {"metric": "cost/latency_ms"}]}, r"each metric may appear once"),
        (
            {"objectives": [{"metric": "val/acc"}, {"metric": "cost/params", "direction": "maximize"}]},
            r"cost/params is a cost and is minimized",
        ),
        ({"objectives": PARETO, "metric": "val/loss"}, r"metric 'val/loss' differs from the first objective"),
        ({"objectives": PARETO, "pruner": {"name": "hyperband"}}, r"pruner hyperband judges one objective"),
        ({"objectives": PARETO, "sampler": {"name": "cmaes"}}, r"cmaes sampler optimizes one objective"),
        ({"pruner": {"name": "pareto"}}, r"pruner pareto judges Pareto studies; add search.objectives"),
    ],
)
def test_bad_constraints_and_objectives_are_one_line_config_errors(
    search: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        _load(**search)
    assert "\n" not in str(error.value)


def test_static_cost_is_what_the_built_network_measures() -> None:
    raw = tiny_experiment()["model"] | {"channels": [8, 16], "hidden": [32]}
    config = RunConfig.model_validate({"model": raw, "data": {"dataset": "digits"}})
    model = model_from_config(config.model, in_channels=1, num_classes=10, image_size=(8, 8))
    measured = measure_cost(model, config, (1, (8, 8), 10))
    static = static_cost(config, (1, (8, 8), 10))
    assert static == {key: measured[key] for key in static}
    assert measured["cost/latency_ms"] > 0 and measured["cost/latency_ms_batch"] > 0
    assert measured["cost/latency_ms_trial_precision"] == measured["cost/latency_ms"]  # float32 trial
    assert 0 < measured["cost/measure_seconds"] < 1.0
