"""Pareto fronts: picking within a budget, the front's table, registry aliases."""

from __future__ import annotations

import re

import pytest

from search.errors import ConvtuneError
from search.experiment.budgets import Budget, parse_budget
from search.study.pareto import alias_for, front, front_markdown, pick
from tests.search.study.pareto_trials import pareto_study_of, pareto_trial


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


KNOWN = (
    pareto_trial([0.90, 1.0], 1.0, [0.9]),  # front
    pareto_trial([0.93, 1.8], 1.8, [0.93]),  # front
    pareto_trial([0.95, 2.5], 2.5, [0.95]),  # front
    pareto_trial([0.91, 2.0], 2.0, [0.91]),  # dominated by 1
    pareto_trial(None, 0.5, [0.5], over_budget="over"),  # pruned: never picked
)


@pytest.mark.parametrize(
    ("budget", "number"),
    [("cost/latency_ms <= 2", 1), ("cost/latency_ms < 1.8", 0), ("cost/latency_ms <= 10", 2)],
)
def test_pick_takes_the_most_accurate_front_trial_within_the_budget(budget: str, number: int) -> None:
    study = pareto_study_of(*KNOWN)
    assert [t.number for t in front(study)] == [0, 1, 2]
    assert pick(study, parse_budget(budget)).number == number


def test_pick_says_when_nothing_fits() -> None:
    with pytest.raises(
        ConvtuneError, match=r"fits cost/latency_ms <= 0.5 \(the cheapest is trial 0 with 1\)"
    ):
        pick(pareto_study_of(*KNOWN), Budget("cost/latency_ms", 0.5))


def test_the_front_table_lists_the_front_cheapest_first() -> None:
    table = front_markdown(pareto_study_of(*KNOWN))
    rows = [line for line in table.splitlines() if line.startswith("| trial-")]
    assert [row.split(" | ")[0] for row in rows] == ["| trial-0000", "| trial-0001", "| trial-0002"]
    assert "| 0.9300 |" in rows[1] and "| 1.8 |" in rows[1]
