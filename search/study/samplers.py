"""The sampler and the pruner an experiment's `search.sampler` and `search.pruner` ask for."""

from __future__ import annotations

import warnings

import optuna

from search.errors import ConfigError
from search.experiment.space import grid_of
from search.experiment.spec import ExperimentSpec
from search.study.cost import CostAwareTPESampler, macs_estimator


def make_sampler(
    spec: ExperimentSpec, data_shape: tuple[int, tuple[int, int]] | None = None
) -> optuna.samplers.BaseSampler:
    """The experiment's sampler; a cost-aware TPE needs the input's `(channels, (height, width))`."""
    config = spec.search.sampler
    seed = config.seed if config.seed is not None else spec.seed
    startup = config.n_startup_trials
    if config.name == "tpe":
        options = {
            "seed": seed,
            "n_startup_trials": 10 if startup is None else startup,
            "multivariate": config.multivariate,
            "group": config.multivariate,  # one joint model per group of parameters sampled together
        }
        if config.cost_aware and data_shape is None:
            raise ValueError("a cost-aware sampler needs data_shape=(channels, (height, width)).")
        with warnings.catch_warnings():  # `group` is marked experimental; convtune pins its use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if config.cost_aware:
                return CostAwareTPESampler(macs_estimator(spec, data_shape), **options)
            return optuna.samplers.TPESampler(**options)
    if config.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.name == "grid":
        try:
            return optuna.samplers.GridSampler(grid_of(spec), seed=seed)
        except ValueError as error:
            raise ConfigError(f"search.sampler: {error}") from None
    if config.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup or 1)
    if config.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, startup or 20))
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10 if startup is None else startup)


def make_pruner(spec: ExperimentSpec) -> optuna.pruners.BasePruner:
    config = spec.search.pruner
    max_epochs = spec.trainer.max_epochs
    if config.name == "median":
        return optuna.pruners.MedianPruner(  # steps are epochs trained: 1 after the first epoch
            n_startup_trials=config.n_startup_trials, n_warmup_steps=config.n_warmup_steps + 1
        )
    if config.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=config.min_resource,
            max_resource=max_epochs,
            reduction_factor=config.reduction_factor,
        )
    if config.name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.min_resource, reduction_factor=config.reduction_factor
        )
    return optuna.pruners.NopPruner()  # none; pareto prunes in its own callback (search.study.pareto_pruning)
