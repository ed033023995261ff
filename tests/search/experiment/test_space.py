"""Sampling the search space: a trial's params and the config they make."""

from __future__ import annotations

import optuna
import pytest

from search.experiment.space import grid_of, suggest
from search.experiment.spec import validate_experiment
from tests.conftest import tiny_experiment


def _spec(space: dict) -> object:
    raw = tiny_experiment()
    raw["search"]["space"] = space
    return validate_experiment(raw)


def test_suggest_sets_dotted_keys_in_the_concrete_config() -> None:
    spec = _spec({"optim.lr": {"float": [1e-4, 1e-1], "log": True}, "model.kernel_size": {"choice": [3, 5]}})
    trial = optuna.trial.FixedTrial({"optim.lr": 0.02, "model.kernel_size": 5})
    params, config = suggest(trial, spec)
    assert params == {"optim.lr": 0.02, "model.kernel_size": 5}
    assert config.optim.lr == 0.02
    assert config.model.kernel_size == 5


def test_conditional_parameter_only_when_its_condition_holds() -> None:
    spec = _spec(
        {
            "optim.name": {"choice": ["adamw", "sgd"]},
            "optim.momentum": {"float": [0.5, 0.9], "when": {"optim.name": "sgd"}},
        }
    )
    params, config = suggest(optuna.trial.FixedTrial({"optim.name": "adamw"}), spec)
    assert "optim.momentum" not in params
    params, config = suggest(optuna.trial.FixedTrial({"optim.name": "sgd", "optim.momentum": 0.7}), spec)
    assert params["optim.momentum"] == 0.7
    assert config.optim.momentum == 0.7


def test_per_layer_filter_sizes() -> None:
    spec = _spec({"model.kernel_size.0": {"choice": [3, 5]}, "model.kernel_size.1": {"choice": [3, 7]}})
    _, config = suggest(optuna.trial.FixedTrial({"model.kernel_size.0": 5, "model.kernel_size.1": 7}), spec)
    assert config.model.kernel_size == [5, 7]


def test_int_and_step_ranges() -> None:
    spec = _spec({"data.batch_size": {"int": [32, 128], "step": 32}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = set()
    for _ in range(20):
        trial = study.ask()
        _, config = suggest(trial, spec)
        values.add(config.data.batch_size)
        study.tell(trial, 0.0)
    assert values <= {32, 64, 96, 128} and len(values) > 1


def test_grid_needs_a_step_for_floats() -> None:
    assert grid_of(
        _spec({"model.kernel_size": {"choice": [3, 5]}, "data.batch_size": {"int": [32, 64], "step": 32}})
    ) == {
        "model.kernel_size": [3, 5],
        "data.batch_size": [32, 64],
    }
    with pytest.raises(ValueError, match="needs a step"):
        grid_of(_spec({"optim.lr": {"float": [1e-4, 1e-1]}}))
