"""Reading and writing a trial by number from outside its `Trial` object."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search.study import optuna_adapter as adapter


def test_a_trial_is_read_written_and_failed_by_number() -> None:
    study = optuna.create_study()
    running = study.ask()
    adapter.set_trial_attr(study, running.number, "note", "hi")
    assert adapter.frozen_trial(study, running.number).user_attrs == {"note": "hi"}
    assert adapter.fail_trial(study, running.number)
    assert adapter.frozen_trial(study, running.number).state == TrialState.FAIL


def test_stale_trials_reach_the_listeners_only_while_they_listen() -> None:
    heard: list[int] = []
    study = optuna.create_study()
    study.ask()
    trial = adapter.frozen_trial(study, study.ask().number)
    with adapter.listening_for_stale(lambda _study, stale: heard.append(stale.number)):
        adapter.stale_trial_callback(study, trial)
    adapter.stale_trial_callback(study, trial)
    assert heard == [1]


def test_an_in_memory_study_keeps_no_heartbeats() -> None:
    study = optuna.create_study()
    assert adapter.heartbeat_storage(study) is None
    assert adapter.fail_stale_trials(study) == []
