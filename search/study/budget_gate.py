"""A trial's cost, recorded before it trains, and the budget it must fit to train at all.

`record_cost` measures the built network (`search.study.model_cost`), logs every `cost/` number as an
MLflow metric and an Optuna user attr, tells Optuna each budget's constraint value
(`trial.set_constraint`, stored with the trial, which TPE, GP and NSGA-II read), and raises
`TrialPruned` for a network over a budget: like an infeasible shape, it is never trained, and the
reason is in the user attr `over_budget` and the MLflow tag `convtune.over_budget`.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import torch
from torch import nn

from lightning_modules.config import RunConfig
from search.experiment.budgets import Budget, over_budget, violations
from search.study.model_cost import DataShape, measure_cost
from search.tracking import vocabulary as v
from search.tracking.tracker import Tracker


def record_cost(
    trial: optuna.Trial,
    tracker: Tracker,
    run_id: str,
    model: nn.Module,
    config: RunConfig,
    budgets: Sequence[Budget],
    *,
    data_shape: DataShape,
    device: torch.device | str = "cpu",
    precision: str = "32",
) -> dict[str, float]:
    """The network's `cost/` numbers, recorded; raises `TrialPruned` when they are over a budget.

    `data_shape` is `(channels, (height, width), classes)` of the data the model was built for.
    """
    costs = measure_cost(model, config, data_shape, device=device, precision=precision)
    tracker.log_metrics(run_id, costs)
    for name, value in costs.items():
        trial.set_user_attr(name, value)
    for metric, violation in violations(budgets, costs).items():
        trial.set_constraint(metric, violation)
    reason = over_budget(budgets, costs)
    if reason is not None:
        trial.set_user_attr(v.ATTR_OVER_BUDGET, reason)
        tracker.set_tags(run_id, {v.TAG_OVER_BUDGET: reason[:500]})
        raise optuna.TrialPruned(f"over budget, not trained: {reason}")
    return costs
