"""`search.study.trial_time`: a finished trial's wall seconds and epochs."""

from __future__ import annotations

import datetime

import optuna

from search.study.trial_time import seconds_per_epoch, trial_epochs, trial_seconds
from search.tracking import vocabulary as v


def test_a_finished_trials_seconds_and_epochs() -> None:
    study = optuna.create_study()
    study.optimize(lambda trial: trial.report(0.5, 1) or trial.report(0.6, 2) or 0.6, n_trials=1)
    (trial,) = study.trials
    assert trial_seconds(trial) == (trial.datetime_complete - trial.datetime_start).total_seconds()
    assert trial_epochs(trial, default=9) == 2
    assert trial_epochs(optuna.trial.create_trial(value=1.0), default=9) == 9
    study.ask()
    assert trial_seconds(study.trials[1]) is None  # still running


def test_seconds_per_epoch_over_reports_or_a_pareto_curve() -> None:
    reported = optuna.trial.create_trial(value=0.9, intermediate_values={0: 0.8, 1: 0.9})
    curve = optuna.trial.create_trial(values=[0.9, 1.0], user_attrs={v.ATTR_CURVE: [0.7, 0.8, 0.9]})
    for trial in (reported, curve):
        trial.datetime_start = datetime.datetime(2026, 12, 6, 9, 0, 0)
        trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=60)
    assert seconds_per_epoch(reported, default_epochs=5) == 30.0
    assert seconds_per_epoch(curve, default_epochs=5) == 20.0
    running = optuna.trial.create_trial(value=0.9)
    running.datetime_complete = None
    assert seconds_per_epoch(running, default_epochs=5) is None
