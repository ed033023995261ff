"""What makes a Pareto study valid, checked when the experiment file loads."""

from __future__ import annotations

from typing import Any

import pytest

from search.errors import ConfigError
from search.experiment.spec import validate_experiment
from tests.conftest import tiny_experiment


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
