"""Finished trials of a synthetic Pareto study (val/acc against cost/latency_ms), shared by the
tests of `search.study.pareto` and `search.study.pareto_pruning`."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from search.tracking import vocabulary as v


def pareto_trial(values: list[float] | None, latency: float, curve: list[float], **attrs: Any) -> Any:
    state = TrialState.COMPLETE if values is not None else TrialState.PRUNED
    return optuna.trial.create_trial(
        state=state,
        values=values,
        user_attrs={"cost/latency_ms": latency, v.ATTR_CURVE: curve, v.ATTR_RUN_ID: "run", **attrs},
    )


def pareto_study_of(*trials: Any) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials(trials)
    return study
