"""Budgets on a network's cost: parsing, relative violations, and what a sampler learns from them."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search.experiment.budgets import Budget, over_budget, parse_budget, parse_limit, violations


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


WIDTHS = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128]


LIMIT = Budget("cost/params", 40.0)  # 6 of the 10 widths fit


SPACE = {"width": CategoricalDistribution(WIDTHS), "lr": FloatDistribution(1e-3, 1e-1, log=True)}


def _within_budget_share(sampler: optuna.samplers.BaseSampler, trials: int = 80, last: int = 40) -> float:
    """A toy Pareto search (accuracy against width) where widths over 32 are over budget: pruned
    before 'training', with the constraint value the objective records."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    fitted = []
    for _ in range(trials):
        trial = study.ask(SPACE)
        width, lr = trial.params["width"], trial.params["lr"]
        trial.set_constraint(LIMIT.metric, LIMIT.violation(width))
        fitted.append(LIMIT.fits(width))
        if LIMIT.fits(width):
            study.tell(trial, [width / 100 - abs(math.log10(lr / 0.01)) / 10, width])
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return sum(fitted[-last:]) / last


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
        lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=10),
    ],
    ids=["tpe", "nsga2"],
)
def test_the_sampler_learns_the_budget_line_from_trials_it_never_trained(make: Any) -> None:
    seeds = range(3)
    learned = [_within_budget_share(make(seed)) for seed in seeds]
    random = [_within_budget_share(optuna.samplers.RandomSampler(seed=seed)) for seed in seeds]
    assert sum(random) / 3 <= 0.65
    assert sum(learned) / 3 >= 0.74
