"""How much of a search space fits the experiment's budgets, estimated before any trial.

`space_fit` samples configs from the space (Optuna's random sampler, the experiment's seed) and
computes each one's parameters, multiply-adds and size from its shapes (exact, no training). Latency
cannot be computed, so it is measured on this machine's CPU for a few of the sampled configs that
fit the other budgets (`LATENCY_SAMPLES`, each time-boxed as a trial's measurement is), and the
fraction is the product of the two shares. A space where no sampled config fits is a `ConfigError`
that names the cheapest value seen, so `convtune check` and `convtune tune` refuse it with exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
from pydantic import ValidationError

from lightning_modules.config import RunConfig
from lightning_modules.models.registry import model_from_config
from lightning_modules.precision import resolve_precision
from search.errors import ConfigError
from search.experiment.budgets import Budget, format_cost
from search.experiment.space import suggest
from search.experiment.spec import ExperimentSpec
from search.study.model_cost import DataShape, measure_cost, static_cost
from search.tracking import vocabulary as v

SAMPLES = 256
LATENCY_SAMPLES = 8
STATIC_METRICS = (v.COST_PARAMS, v.COST_MACS, v.COST_SIZE_BYTES)


@dataclass
class BudgetFit:
    """Sampled configs, how many fit the budgets computed from shapes, and of the few whose latency
    was measured, how many fit the latency budgets; the cheapest value seen per budget."""

    budgets: list[Budget]
    sampled: int = 0
    static_fit: int = 0
    measured: int = 0
    latency_fit: int = 0
    cheapest: dict[str, float] = field(default_factory=dict)

    @property
    def measures_latency(self) -> bool:
        return any(budget.metric not in STATIC_METRICS for budget in self.budgets)

    @property
    def fraction(self) -> float:
        share = self.static_fit / max(self.sampled, 1)
        if self.measures_latency:
            share *= self.latency_fit / max(self.measured, 1)
        return share

    def summary(self) -> str:
        text = (
            f"about {self.fraction:.0%} of the space fits the budget ({', '.join(map(str, self.budgets))}): "
            f"{self.static_fit} of {self.sampled} sampled configs fit by parameters, multiply-adds and size "
            "(computed from shapes)"
        )
        if self.measures_latency:
            text += f", {self.latency_fit} of {self.measured} of those by latency (measured on this CPU)"
        return text + "."

    def note(self, costs: dict[str, float]) -> None:
        for budget in self.budgets:
            if budget.metric in costs:
                value = costs[budget.metric]
                self.cheapest[budget.metric] = min(value, self.cheapest.get(budget.metric, value))


def _fits(budgets: Sequence[Budget], costs: dict[str, float]) -> bool:
    return all(budget.fits(costs[budget.metric]) for budget in budgets if budget.metric in costs)


def _sampled_configs(spec: ExperimentSpec, count: int) -> list[RunConfig]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    configs = []
    for _ in range(count):
        trial = study.ask()
        try:
            configs.append(suggest(trial, spec)[1])
        except ValidationError:
            continue
        finally:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return configs


def space_fit(
    spec: ExperimentSpec,
    data_shape: DataShape,
    *,
    samples: int = SAMPLES,
    latency_samples: int = LATENCY_SAMPLES,
) -> BudgetFit | None:
    """The estimate for `spec`'s budgets on data of `(channels, (height, width), classes)`, None
    without budgets; raises `ConfigError` when no sampled config fits."""
    budgets = spec.search.budgets
    if not budgets:
        return None
    fit = BudgetFit(budgets)
    static = [b for b in budgets if b.metric in STATIC_METRICS]
    timed = [b for b in budgets if b.metric not in STATIC_METRICS]
    architectures: dict[str, dict[str, float] | None] = {}
    fitting: list[RunConfig] = []
    for config in _sampled_configs(spec, samples):
        key = json.dumps([config.model.model_dump(mode="json"), config.data.image_size])
        if key not in architectures:
            architectures[key] = _static(config, data_shape)
        costs = architectures[key]
        if costs is None:  # its maps vanish: pruned before training, not a budget matter
            continue
        fit.sampled += 1
        fit.note(costs)
        if _fits(static, costs):
            fit.static_fit += 1
            fitting.append(config)
    if fit.sampled and not fit.static_fit:
        raise ConfigError(_nothing_fits(fit, static, f"{fit.sampled} sampled configs"))
    if timed and fitting:
        _measure_latency(fit, timed, fitting[:latency_samples], data_shape)
        if not fit.latency_fit:
            raise ConfigError(_nothing_fits(fit, timed, f"{fit.measured} configs measured on this CPU"))
    return fit


def _static(config: RunConfig, data_shape: DataShape) -> dict[str, float] | None:
    try:
        return static_cost(config, data_shape)
    except ValueError:
        return None


def _measure_latency(
    fit: BudgetFit,
    budgets: Sequence[Budget],
    configs: Sequence[RunConfig],
    data_shape: DataShape,
) -> None:
    in_channels, image_size, num_classes = data_shape
    for config in configs:
        size = config.data.input_size(image_size)
        model = model_from_config(
            config.model, in_channels=in_channels, num_classes=num_classes, image_size=size
        )
        precision = resolve_precision(config.trainer.precision, "cpu")
        costs = measure_cost(model, config, data_shape, precision=precision)
        fit.measured += 1
        fit.note(costs)
        fit.latency_fit += _fits(budgets, costs)


def _nothing_fits(fit: BudgetFit, budgets: Sequence[Budget], seen: str) -> str:
    smallest = ", ".join(
        f"the smallest {budget.metric} is {format_cost(fit.cheapest[budget.metric])}"
        for budget in budgets
        if budget.metric in fit.cheapest
    )
    return (
        f"search.constraints: none of {seen} fits {' and '.join(map(str, budgets))} ({smallest}); "
        "raise the budget or add cheaper choices (fewer channels, stride 2) to the space."
    )
