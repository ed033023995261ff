"""Sampling the search space: a trial's params, and the concrete config they make."""

from __future__ import annotations

import math
from typing import Any

import optuna

from lightning_modules.config import RunConfig
from search.experiment.dotted import config_from_params, get_dotted, set_dotted
from search.experiment.param_spec import ParamSpec
from search.experiment.spec import ExperimentSpec

MAX_GRID_POINTS = 100_000  # Optuna's grid sampler lists every combination up front


def suggest_value(trial: optuna.Trial, key: str, param: ParamSpec) -> Any:
    if param.kind == "choice":
        return trial.suggest_categorical(key, param.choice)  # type: ignore[arg-type]
    if param.kind == "int":
        low, high = param.int_range  # type: ignore[misc]
        step = int(param.step) if param.step is not None else 1
        return trial.suggest_int(key, low, high, step=step, log=param.log)
    low, high = param.float_range  # type: ignore[misc]
    return trial.suggest_float(key, low, high, step=param.step, log=param.log)


def is_active(param: ParamSpec, config: dict[str, Any]) -> bool:
    """A conditional parameter is sampled only when every `when` key has its value (or one of a list)."""
    for key, expected in (param.when or {}).items():
        actual = get_dotted(config, key)
        allowed = expected if isinstance(expected, list) else [expected]
        if actual not in allowed:
            return False
    return True


def suggest(trial: optuna.Trial, spec: ExperimentSpec) -> tuple[dict[str, Any], RunConfig]:
    """Samples the space in declaration order; conditions see the values sampled before them."""
    sampled = spec.run_dict()
    params: dict[str, Any] = {}
    for key, param in spec.search.space.items():
        if not is_active(param, sampled):
            continue
        value = suggest_value(trial, key, param)
        set_dotted(sampled, key, value)
        params[key] = value
    return params, config_from_params(spec, params)


def grid_of(spec: ExperimentSpec) -> dict[str, list[Any]]:
    """The grid sampler's search space: every choice, or a range's `step` grid (int steps of 1)."""
    grid: dict[str, list[Any]] = {}
    for key, param in spec.search.space.items():
        if param.kind == "choice":
            grid[key] = list(param.choice)  # type: ignore[arg-type]
            continue
        low, high = param.int_range or param.float_range  # type: ignore[misc]
        step = param.step or (1 if param.kind == "int" else None)
        if step is None:
            raise ValueError(
                f"the grid sampler needs a step for float range {key!r}; add step: or use choice:."
            )
        count = round((high - low) / step) + 1
        if count > MAX_GRID_POINTS:
            raise ValueError(
                f"the grid for {key!r} has {count:,} points, more than {MAX_GRID_POINTS:,}; "
                "raise its step or narrow its range."
            )
        grid[key] = [low + i * step for i in range(count)]
    total = math.prod(len(values) for values in grid.values())
    if total > MAX_GRID_POINTS:
        raise ValueError(
            f"the grid has {total:,} combinations, more than {MAX_GRID_POINTS:,}; use fewer values or "
            "another sampler (tpe, random)."
        )
    return grid
