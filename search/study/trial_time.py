"""How long a finished trial took, and how many epochs it trained: what the time budget measures."""

from __future__ import annotations

from optuna.trial import FrozenTrial

from search.tracking import vocabulary as v


def trial_seconds(trial: FrozenTrial) -> float | None:
    """Wall seconds from start to end, None while it runs."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def trial_epochs(trial: FrozenTrial, default: int) -> int:
    """Epochs the trial trained: its reports (or a Pareto trial's curve), else the experiment's."""
    return len(trial.intermediate_values) or len(trial.user_attrs.get(v.ATTR_CURVE, [])) or default


def seconds_per_epoch(trial: FrozenTrial, default_epochs: int) -> float | None:
    """The trial's wall seconds over the epochs it trained, None while it runs."""
    seconds = trial_seconds(trial)
    return None if seconds is None else seconds / trial_epochs(trial, default_epochs)
