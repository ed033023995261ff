"""`search.reproduce.ensemble`: which trials make an ensemble, and what `--top-k` refuses."""

from __future__ import annotations

import optuna
import pytest

from search.errors import ConfigError
from search.experiment.spec import validate_experiment
from search.reproduce.ensemble import reproduce_ensemble, top_trials
from search.reproduce.options import ReproduceOptions
from tests.conftest import tiny_experiment


def test_top_trials_counts_repeated_params_once() -> None:
    study = optuna.create_study(direction="maximize")
    for value, lr in ((0.9, 0.1), (0.95, 0.2), (0.95, 0.2), (0.8, 0.3)):
        study.enqueue_trial({"lr": lr})
        study.optimize(lambda t, value=value: (t.suggest_float("lr", 0.01, 1), value)[1], n_trials=1)
    trials, notes = top_trials(study, 3)
    assert [t.number for t in trials] == [1, 0, 3] and notes == []
    trials, notes = top_trials(study, 5)
    assert len(trials) == 3 and "3 distinct COMPLETE trials, not 5" in notes[0]


def test_top_k_refuses_trial_and_pick() -> None:
    spec = validate_experiment(tiny_experiment())
    with pytest.raises(ConfigError, match="--top-k chooses its trials"):
        reproduce_ensemble(spec, ReproduceOptions(trial=1), 2)
