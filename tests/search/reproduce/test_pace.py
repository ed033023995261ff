"""`search.reproduce.pace`: later members' epochs from the pace the finished ones kept."""

from __future__ import annotations

import datetime
import time

import optuna

from search.reproduce.pace import MemberPace, Pacing, TrainingTime, ceiling_in_time, epochs_that_fit


def test_nothing_changes_before_a_member_has_finished() -> None:
    assert epochs_that_fit([], 20.0, seconds_left=600.0, ceiling=30) is None
    assert epochs_that_fit([MemberPace(600.0, 10, 20.0)], None, seconds_left=600.0, ceiling=30) is None


def test_a_member_faster_than_planned_gives_the_next_more_epochs_and_a_slower_one_fewer() -> None:
    # finished: 10 epochs in 600 s where its trial took 20 s per epoch, so x3 its trial
    finished = [MemberPace(600.0, 10, trial_epoch_seconds=20.0)]
    assert epochs_that_fit(finished, 20.0, seconds_left=900.0, ceiling=30) == 15  # 60 s per epoch
    assert epochs_that_fit(finished, 40.0, seconds_left=900.0, ceiling=30) == 7  # a trial twice as slow
    assert epochs_that_fit(finished, 20.0, seconds_left=9_000.0, ceiling=30) == 30  # never past the ceiling
    assert epochs_that_fit(finished, 20.0, seconds_left=10.0, ceiling=30) == 1  # at least one


def test_the_ceiling_is_a_time_so_a_network_faster_per_epoch_may_train_more_epochs() -> None:
    finished = [MemberPace(600.0, 10, trial_epoch_seconds=20.0)]
    assert ceiling_in_time(finished, 10.0, ceiling=30) == 60  # twice as fast per epoch: 30 epochs' time
    assert ceiling_in_time(finished, 40.0, ceiling=30) == 30  # a slower network: still 30 epochs
    assert ceiling_in_time([], 10.0, ceiling=30) == 30  # nothing finished: no pace to compare with
    assert epochs_that_fit(finished, 10.0, seconds_left=9_000.0, ceiling=30) == 60
    assert epochs_that_fit(finished, 10.0, seconds_left=900.0, ceiling=30) == 30  # 30 s per epoch fit


def test_the_start_up_the_finished_members_took_comes_off_the_time_left() -> None:
    finished = [MemberPace(600.0, 10, 20.0, startup=30.0), MemberPace(600.0, 10, 20.0, startup=90.0)]
    assert epochs_that_fit(finished, 20.0, seconds_left=900.0, ceiling=30) == 14  # (900 - 60) / 60


def test_the_pace_of_several_finished_members_is_averaged() -> None:
    finished = [MemberPace(600.0, 10, 20.0), MemberPace(400.0, 10, 20.0)]  # x3 and x2 their trials
    assert epochs_that_fit(finished, 10.0, seconds_left=500.0, ceiling=30) == 20  # x2.5: 25 s per epoch


def test_pacing_is_idle_without_a_deadline_or_a_ceiling_and_learns_from_finished_members() -> None:
    trial = _trial(seconds_per_epoch=20.0)
    soon = time.time() + 900.0
    assert Pacing(ceiling=None, default_epochs=5).epochs(trial, soon) is None  # plain reproduce --top-k
    pacing = Pacing(ceiling=30, default_epochs=5)
    assert pacing.epochs(trial, None) is None
    assert pacing.epochs(trial, soon) is None  # nothing finished yet: as planned
    pacing.finished(trial, None)  # not clocked: nothing learnt
    pacing.finished(trial, TrainingTime(startup=5.0, seconds=600.0, epochs=0))  # stopped before an epoch
    assert pacing.epochs(trial, soon) is None
    pacing.finished(trial, TrainingTime(startup=5.0, seconds=600.0, epochs=10))  # 60 s per epoch
    assert pacing.epochs(trial, soon) in (14, 15)  # 900 s less 5 s of start-up (and the test's instants)
    assert pacing.epochs(trial, time.time() + 9_000.0) == 30
    faster = _trial(seconds_per_epoch=12.0)
    assert pacing.ceiling_for(trial) == 30 and pacing.ceiling_for(faster) == 50
    assert pacing.epochs(faster, time.time() + 9_000.0) == 50
    assert Pacing(ceiling=None, default_epochs=5).ceiling_for(faster) is None


def _trial(seconds_per_epoch: float) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(value=0.9, intermediate_values={epoch: 0.9 for epoch in range(5)})
    trial.datetime_start = datetime.datetime(2026, 12, 6, 9, 0, 0)
    trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=5 * seconds_per_epoch)
    return trial
