"""Budgets on a network's cost: `search.constraints` and `reproduce --pick`.

A budget is a cost metric, `<=` or `<`, and a positive number: `cost/params <= 100000`,
`cost/latency_ms < 2`. A trial over any budget of the experiment is never trained; Optuna learns
where the budget line is from each trial's constraint values (`Budget.violation`: the relative
excess, value / limit - 1, positive when over), which makes budgets of different units add up
sensibly when Optuna ranks infeasible trials by their summed violation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from search.experiment.names import shown
from search.tracking import vocabulary as v

COST_METRICS = v.COST_METRICS
_LIMIT = re.compile(r"^\s*(<=|<)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_BUDGET = re.compile(r"^\s*(\S+?)\s*(<=|<)(.*)$")
FORM = '"<= NUMBER" or "< NUMBER", like "<= 100000"'


@dataclass(frozen=True)
class Budget:
    """`metric <= limit` (or `<` when `strict`)."""

    metric: str
    limit: float
    strict: bool = False

    def fits(self, value: float) -> bool:
        return value < self.limit if self.strict else value <= self.limit

    def violation(self, value: float) -> float:
        """value / limit - 1: positive when over; a strict budget's limit itself is over by 1e-9."""
        excess = value / self.limit - 1
        return max(excess, 1e-9) if self.strict and excess == 0 else excess

    def __str__(self) -> str:
        return f"{self.metric} {'<' if self.strict else '<='} {format_cost(self.limit)}"


def format_cost(value: float) -> str:
    """Counts as integers with thousands separators (`176,706`), times to 3 significant digits."""
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}"


def check_cost_metric(metric: str) -> str:
    if metric not in COST_METRICS:
        raise ValueError(f"unknown cost metric {shown(metric)}; use one of {', '.join(COST_METRICS)}")
    return metric


def parse_limit(metric: str, expression: str | float) -> Budget:
    """`search.constraints`' `{metric: "<= 100000"}` entry (a bare number means `<=`)."""
    check_cost_metric(metric)
    if isinstance(expression, bool):
        raise ValueError(f"{metric}: a budget is {FORM}, but got {shown(expression)}")
    match = _LIMIT.match(str(expression))
    if match is None:
        raise ValueError(f"{metric}: a budget is {FORM}, but got {shown(expression)}")
    operator, number = match.groups()
    limit = float(number)
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"{metric}: a budget's limit must be a positive number, but got {number}")
    return Budget(metric, limit, strict=operator == "<")


def parse_budget(text: str) -> Budget:
    """`cost/latency_ms <= 2`, as `reproduce --pick` takes it."""
    match = _BUDGET.match(text)
    if match is None:
        raise ValueError(f"a budget is METRIC <= NUMBER, like 'cost/latency_ms <= 2', but got {shown(text)}")
    metric, operator, number = match.groups()
    return parse_limit(metric, f"{operator}{number}")


def violations(budgets: Iterable[Budget], costs: Mapping[str, float]) -> dict[str, float]:
    """Each budget's violation (Optuna's constraint value: > 0 is infeasible), by metric."""
    return {budget.metric: budget.violation(costs[budget.metric]) for budget in budgets}


def over_budget(budgets: Iterable[Budget], costs: Mapping[str, float]) -> str | None:
    """Why `costs` are over a budget (every budget they break), or None when they fit all."""
    broken = [
        f"{budget.metric} = {format_cost(costs[budget.metric])} is over {budget}"
        for budget in budgets
        if not budget.fits(costs[budget.metric])
    ]
    return "; ".join(broken) or None
