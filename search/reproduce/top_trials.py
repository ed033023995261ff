"""Which trials an ensemble retrains: the K best COMPLETE trials with distinct params, or the best trial
of each of the K best networks (`reproduce --distinct architecture`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import ConfigError, ConvtuneError
from search.study.pareto import metric_value

MAX_TOP_K = 20
# Searched fields that change how a network trains, not which network it is
NOT_ARCHITECTURE = frozenset({"dropout", "head_dropout", "freeze", "unfreeze_after", "weights", "pretrained"})
Distinct = Literal["params", "architecture"]


def architecture_key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The searched `model.*` params that shape the network (widths, depth, kernels, pooling, ...);
    dropout rates and fine-tuning settings left out."""
    return tuple(
        sorted(
            (name, repr(value))
            for name, value in params.items()
            if name.startswith("model.") and name.split(".")[1] not in NOT_ARCHITECTURE
        )
    )


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def _first_of_each(
    trials: list[FrozenTrial], key: Callable[[dict[str, Any]], object], k: int
) -> list[FrozenTrial]:
    chosen: list[FrozenTrial] = []
    seen: set[object] = set()
    for trial in trials:
        if (value := key(trial.params)) not in seen:
            seen.add(value)
            chosen.append(trial)
            if len(chosen) == k:
                break
    return chosen


def top_trials(
    study: optuna.Study, k: int, distinct: Distinct = "params"
) -> tuple[list[FrozenTrial], list[str]]:
    """The `k` best COMPLETE trials with distinct params (a retried or repeated trial counts once).

    With `distinct="architecture"`, the best trial of each of the `k` best networks (`architecture_key`),
    so that the ensemble's members differ in more than their learning rates; where the study holds
    fewer networks than `k`, the best remaining trials with distinct params fill the rest, best first.
    """
    if not 1 <= k <= MAX_TOP_K:
        raise ConfigError(f"--top-k must be in [1, {MAX_TOP_K}], but got {k}.")
    completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    completed.sort(
        key=lambda t: (-(metric_value(t) or 0.0) if maximize else metric_value(t) or 0.0, t.number)
    )
    unique = _first_of_each(completed, _params_key, len(completed))
    if not unique:
        raise ConvtuneError(
            f"study {study.study_name!r} has no COMPLETE trial yet; run `convtune tune` first."
        )
    notes: list[str] = []
    if distinct == "architecture":
        networks = _first_of_each(unique, architecture_key, k)
        if len(networks) < k and len(unique) > len(networks):
            notes.append(
                f"the study has {len(networks)} distinct networks among its COMPLETE trials, not {k}; "
                "the best other trials fill the rest."
            )
        taken = {t.number for t in networks}
        others = [t for t in unique if t.number not in taken][: k - len(networks)]
        taken.update(t.number for t in others)
        chosen = [t for t in unique if t.number in taken]  # best first
    else:
        chosen = unique[:k]
    if len(chosen) < k:
        notes.append(f"the study has {len(chosen)} distinct COMPLETE trials, not {k}.")
    return chosen, notes
