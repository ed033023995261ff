"""Cost-aware sampling: TPE that weighs a candidate's promise against the seconds it would take.

TPE draws candidates from the density of the good trials, l(x), and keeps the one with the highest
log l(x) - log g(x), g being the density of the others. On a wall-clock budget a network five times
slower has to be five times as promising to be worth its time ("expected improvement per second",
Snoek, Larochelle and Adams, 2012), so this sampler subtracts log(predicted seconds per epoch). The
prediction is a straight line fitted through the study's finished trials, seconds per epoch against
multiply-accumulates per image from the architecture table; its intercept, the time every trial
spends whatever its network (loading batches, the optimizer, validation), keeps small networks
from looking free. Candidates whose feature maps would vanish are never chosen.

Measured on `experiments/fashion_mnist_explore.yaml` (docs/performance.md), it reached random
search's best sooner in one repeat of three and later in the other two, so it is opt-in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from lightning_modules.models.registry import has_arithmetic_table
from lightning_modules.models.shapes import multiply_adds
from search.experiment.dotted import config_from_params
from search.experiment.spec import ExperimentSpec

MIN_TRIALS_TO_FIT = 3

MacsEstimator = Callable[[dict[str, Any]], int | None]


@dataclass(frozen=True)
class CostModel:
    """Seconds per epoch = `fixed` + `per_mac` * multiply-accumulates per image."""

    fixed: float
    per_mac: float

    def __post_init__(self) -> None:
        if not self.fixed > 0:
            raise ValueError(f"fixed must be positive, but got fixed={self.fixed}.")
        if not self.per_mac >= 0:
            raise ValueError(f"per_mac must be non-negative, but got per_mac={self.per_mac}.")

    @classmethod
    def fit(cls, macs: Sequence[float], seconds: Sequence[float]) -> CostModel | None:
        """The least-squares line, or None while the trials cannot show how cost grows with size.

        A negative intercept (a few slow small trials) is raised to a tenth of the fastest epoch.
        """
        x, y = np.asarray(macs, dtype=float), np.asarray(seconds, dtype=float)
        if len(x) < MIN_TRIALS_TO_FIT or np.ptp(x) == 0:
            return None
        slope, intercept = np.polyfit(x, y, 1)
        if slope <= 0:
            return None
        return cls(fixed=max(float(intercept), 0.1 * float(y.min())), per_mac=float(slope))

    def seconds(self, macs: np.ndarray) -> np.ndarray:
        return self.fixed + self.per_mac * macs


def macs_estimator(spec: ExperimentSpec, data_shape: tuple[int, tuple[int, int]]) -> MacsEstimator:
    """Multiply-accumulates per image of the convnet a set of params makes, None if it cannot run.

    The classifier is counted with one output: the number of classes is the same for every trial.
    """
    in_channels, image_size = data_shape

    def estimate(params: dict[str, Any]) -> int | None:
        try:
            config = config_from_params(spec, params)
            if not has_arithmetic_table(config.model):
                return None
            size = config.data.input_size(image_size)
            return multiply_adds(config.model, in_channels, size, num_classes=1)
        except ValueError:  # an invalid combination, or a feature map that vanishes
            return None

    return estimate


def seconds_per_epoch(trial: FrozenTrial) -> float | None:
    """Wall-clock seconds of a finished trial over the epochs it trained (its last reported step)."""
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or not trial.intermediate_values:
        return None
    duration = trial.duration
    epochs = max(trial.intermediate_values)
    if duration is None or epochs < 1:
        return None
    return duration.total_seconds() / epochs


class CostAwareTPESampler(optuna.samplers.TPESampler):
    """TPE whose choice among its candidates is divided by their predicted seconds per epoch.

    It hooks into `TPESampler._sample` and `_compute_acquisition_func` (as of optuna 5.0), which
    `tests/search/study/test_cost.py` checks, so an optuna that renames them fails there, not silently.
    """

    def __init__(self, estimate_macs: MacsEstimator, **tpe_options: Any) -> None:
        super().__init__(**tpe_options)
        self._estimate_macs = estimate_macs
        self._macs_of_trial: dict[int, int | None] = {}
        self._space: dict[str, BaseDistribution] = {}
        self._cost: CostModel | None = None
        self._fitted_on = -1  # finished trials the line was fitted on

    @property
    def cost_model(self) -> CostModel | None:
        """The line fitted when the sampler last chose among candidates."""
        return self._cost

    def _sample(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._space = search_space
        self._cost = self._fit(study)
        return super()._sample(study, trial, search_space)

    def _compute_acquisition_func(
        self, samples: dict[str, np.ndarray], mpe_below: Any, mpe_above: Any
    ) -> np.ndarray:
        values = super()._compute_acquisition_func(samples, mpe_below, mpe_above)
        macs = self._candidate_macs(samples)
        runnable = ~np.isnan(macs)
        if not runnable.any():
            return values
        values = np.where(runnable, values, -np.inf)
        if self._cost is not None:
            values = values - np.log(self._cost.seconds(np.nan_to_num(macs)))
        return values

    def _candidate_macs(self, samples: dict[str, np.ndarray]) -> np.ndarray:
        count = next(iter(samples.values())).size
        macs = np.full(count, np.nan)
        for index in range(count):
            params = {
                name: self._space[name].to_external_repr(values[index]) for name, values in samples.items()
            }
            estimate = self._estimate_macs(params)
            if estimate is not None:
                macs[index] = estimate
        return macs

    def _fit(self, study: optuna.Study) -> CostModel | None:
        """The line through the finished trials; refitted only when more have finished (without
        multivariate TPE, `_sample` runs once per parameter)."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(trials) == self._fitted_on:
            return self._cost
        self._fitted_on = len(trials)
        points = []
        for trial in trials:
            seconds = seconds_per_epoch(trial)
            if trial.number not in self._macs_of_trial:
                self._macs_of_trial[trial.number] = self._estimate_macs(trial.params)
            macs = self._macs_of_trial[trial.number]
            if seconds is not None and macs is not None:
                points.append((macs, seconds))
        if not points:
            return None
        macs_values, second_values = zip(*points, strict=True)
        return CostModel.fit(macs_values, second_values)
