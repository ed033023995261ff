"""`search.objectives`: what makes a Pareto study valid, checked when the experiment file loads.

A Pareto study trains for one metric (the first objective: val/acc, val/loss or train/loss) and
minimizes one or more cost metrics beside it (`cost/...`, known before training). `search.metric`
and `search.direction` follow the first objective; Optuna's single-objective pruners cannot judge
it (`trial.report` is single-objective), so its pruner is `pareto` unless set to `none`, and the
single-objective CMA-ES sampler is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.experiment.budgets import check_cost_metric

if TYPE_CHECKING:
    from search.experiment.spec import SearchConfig

TRAINING_METRICS = ("val/acc", "val/loss", "train/loss")  # what a trial measures; the rest are costs
SINGLE_OBJECTIVE_PRUNERS = ("median", "hyperband", "successive-halving")


def check_pareto(search: SearchConfig) -> None:
    """Validates `search.objectives` and aligns metric, direction and pruner with it (in place)."""
    if search.objectives is None:
        if search.pruner.name == "pareto":
            raise ValueError(
                "pruner pareto judges Pareto studies; add search.objectives or use another pruner."
            )
        return
    _check_metrics(search)
    _align_metric(search)
    _align_pruner(search)
    if search.sampler.name == "cmaes":
        raise ValueError(
            "the cmaes sampler optimizes one objective; a Pareto study uses tpe, nsga2, gp or random."
        )


def _check_metrics(search: SearchConfig) -> None:
    objectives = search.objectives or []
    names = [objective.metric for objective in objectives]
    if len(objectives) < 2 or names[0] not in TRAINING_METRICS:
        raise ValueError(
            f"objectives: list the training metric ({', '.join(TRAINING_METRICS)}) first, then one or more "
            f"cost metrics, like [{{metric: val/acc}}, {{metric: cost/latency_ms}}], but got {names}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"objectives: each metric may appear once, but got {names}.")
    for objective in objectives[1:]:
        check_cost_metric(objective.metric)
        if objective.direction == "maximize":
            raise ValueError(
                f"objectives: {objective.metric} is a cost and is minimized; drop its direction."
            )


def _align_metric(search: SearchConfig) -> None:
    first = (search.objectives or [])[0]
    explicit = search.model_fields_set
    if "metric" in explicit and search.metric != first.metric:
        raise ValueError(
            f"metric {search.metric!r} differs from the first objective {first.metric!r}; drop search.metric."
        )
    if "direction" in explicit and first.direction is not None and search.direction != first.direction:
        raise ValueError(
            f"direction {search.direction!r} differs from the first objective's {first.direction!r}."
        )
    search.metric = first.metric
    search.direction = first.direction or search.direction


def _align_pruner(search: SearchConfig) -> None:
    if search.pruner.name not in SINGLE_OBJECTIVE_PRUNERS:
        return
    if "name" in search.pruner.model_fields_set:
        raise ValueError(
            f"pruner {search.pruner.name} judges one objective; a Pareto study prunes with name: pareto "
            "(the default there) or none."
        )
    search.pruner = search.pruner.model_copy(update={"name": "pareto"})
