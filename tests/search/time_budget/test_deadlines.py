"""`search.time_budget.deadlines`: the search's clock shared through a file, the trial it prunes, and
the reproduction's training deadline."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest

from search.experiment.spec import validate_experiment
from search.time_budget.deadlines import SearchClock, SearchEndCallback, TrainingDeadline
from tests.conftest import tiny_experiment


def test_the_search_clock_is_shared_through_its_file(tmp_path: Path) -> None:
    writer, reader = SearchClock(tmp_path / "clock.json"), SearchClock(tmp_path / "clock.json")
    assert not reader.out_of_time() and not reader.past_end()  # no file yet: no limit
    now = time.time()
    writer.set(now - 1, now + 3600)
    assert writer.out_of_time() and not writer.past_end()  # the writer knows at once
    time.sleep(0.6)  # a reader looks again every half second
    assert reader.out_of_time() and not reader.past_end()
    writer.set(now - 2, now - 1)
    time.sleep(0.6)
    assert reader.past_end()


def test_a_trial_past_the_search_end_is_pruned_once_the_study_has_a_result(tmp_path: Path) -> None:
    clock = SearchClock(tmp_path / "clock.json")
    clock.set(time.time() - 2, time.time() - 1)  # the search's share is over
    study = optuna.create_study(direction="maximize")
    running = study.ask()
    callback = SearchEndCallback(clock, running)
    callback.on_train_batch_end()  # no COMPLETE trial yet: the reproduction needs this one
    study.tell(study.ask(), 0.5)
    time.sleep(1.05)  # the callback asks the storage at most once a second
    with pytest.raises(optuna.TrialPruned, match="the search's share of the time budget ran out"):
        callback.on_train_batch_end()


def test_training_stops_at_the_deadline_with_the_best_weights_so_far() -> None:
    from search.reproduce.retrain import train

    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 50}))
    deadline = TrainingDeadline(time.time())  # already due: stops after the first batch
    parts, best, _, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[deadline])
    assert best.best_value is not None  # Lightning validated the partial epoch
    assert parts.module.trainer.global_step == 1  # one batch, not 50 epochs
    assert best.best_epoch == 0
    note = deadline.note()
    assert note is not None and "epoch 1 of 50" in note
