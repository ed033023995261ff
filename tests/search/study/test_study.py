"""A study: created or reopened, found by name, its own trials and its best."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from search.errors import ConfigError
from search.experiment.spec import ExperimentSpec, validate_experiment
from search.study.storage import open_storage
from search.study.study import best_trial, count_states, find_study, is_prior, open_study, own_trials
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment


def _spec() -> ExperimentSpec:
    return validate_experiment(tiny_experiment(search__sampler={"name": "tpe", "seed": 3}))


def test_reopening_a_study_with_another_direction_is_refused(workdir: Path) -> None:
    handle = open_storage(None)
    open_study(_spec(), handle)
    raw = tiny_experiment()
    raw["search"]["metric"] = "val/loss"
    with pytest.raises(ConfigError, match="use another --study name"):
        open_study(validate_experiment(raw), handle)


def _with_a_prior(study: optuna.Study) -> optuna.Study:
    lr = FloatDistribution(1e-3, 1e-2, log=True)
    study.add_trial(create_trial(params={"optim.lr": 5e-3}, distributions={"optim.lr": lr}, value=0.9))
    study.add_trial(
        create_trial(
            params={"optim.lr": 2e-3},
            distributions={"optim.lr": lr},
            value=0.99,
            user_attrs={v.ATTR_WARM_START_OF: "explore#0"},
        )
    )
    return study


def test_a_warm_start_prior_is_neither_counted_nor_the_best() -> None:
    study = _with_a_prior(optuna.create_study(direction="maximize"))
    prior = study.trials[1]
    assert is_prior(prior) and not is_prior(study.trials[0])
    assert [t.number for t in own_trials(study)] == [0]
    assert count_states(study)["COMPLETE"] == 1
    assert best_trial(study).number == 0  # type: ignore[union-attr]
    assert best_trial(optuna.create_study()) is None


def test_finding_a_missing_study_names_those_there(workdir: Path) -> None:
    handle = open_storage(None)
    open_study(_spec(), handle)
    assert find_study(handle, "tiny").study_name == "tiny"
    with pytest.raises(ConfigError, match=r"no study named 'other' in .* \(studies there: tiny\)"):
        find_study(handle, "other")
