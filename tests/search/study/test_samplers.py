"""The sampler and pruner an experiment asks for."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.errors import ConfigError
from search.experiment.spec import validate_experiment
from search.study.samplers import make_pruner, make_sampler
from search.study.trial_loop import tell
from tests.conftest import tiny_experiment


def _spec(sampler: str = "tpe", pruner: str = "median", space: dict | None = None) -> object:
    raw = tiny_experiment()
    raw["search"]["sampler"] = {"name": sampler, "seed": 3}
    raw["search"]["pruner"] = {"name": pruner}
    raw["search"]["space"] = space or {
        "optim.lr": {"float": [1e-3, 1e-2], "log": True},
        "model.kernel_size": {"choice": [3, 5]},
    }
    return validate_experiment(raw)


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "gp"])
def test_every_sampler_is_seeded(name: str) -> None:
    def sample(seed_run: int) -> list[float]:
        study = optuna.create_study(sampler=make_sampler(_spec(name)), direction="maximize")
        values = []
        for _ in range(3):
            trial = study.ask()
            values.append(trial.suggest_float("optim.lr", 1e-3, 1e-2, log=True))
            study.tell(trial, values[-1])
        return values

    assert sample(0) == sample(1)


def test_grid_sampler_walks_the_grid() -> None:
    spec = _spec(
        "grid",
        space={"model.kernel_size": {"choice": [3, 5]}, "data.batch_size": {"int": [32, 64], "step": 32}},
    )
    study = optuna.create_study(sampler=make_sampler(spec))
    seen = set()
    for _ in range(4):
        trial = study.ask()
        seen.add(
            (
                trial.suggest_categorical("model.kernel_size", [3, 5]),
                trial.suggest_int("data.batch_size", 32, 64, step=32),
            )
        )
        tell(study, trial, TrialState.COMPLETE, 0.0)
    assert seen == {(3, 32), (3, 64), (5, 32), (5, 64)}


def test_grid_sampler_without_float_step_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a step"):
        make_sampler(_spec("grid"))


@pytest.mark.parametrize(
    "space",
    [
        {"data.batch_size": {"int": [1, 10**30]}},
        {f"model.kernel_size.{i}": {"int": [1, 100]} for i in range(2)} | {"seed": {"int": [0, 99]}},
    ],
)
def test_a_grid_too_large_to_list_is_a_config_error(space: dict) -> None:
    with pytest.raises(ConfigError, match=r"more than 100,000"):
        make_sampler(_spec("grid", space=space))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("successive-halving", optuna.pruners.SuccessiveHalvingPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruners(name: str, kind: type) -> None:
    assert isinstance(make_pruner(_spec(pruner=name)), kind)


def test_multivariate_tpe_models_parameters_jointly() -> None:
    raw = tiny_experiment()
    raw["search"]["sampler"] = {"name": "tpe", "seed": 3, "multivariate": True}
    sampler = make_sampler(validate_experiment(raw))
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._group  # private, but Optuna exposes no getter
    assert not make_sampler(_spec("tpe"))._multivariate
