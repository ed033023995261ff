"""What `tune` tells an observer; `Unwatched` takes every message and shows nothing."""

from __future__ import annotations

import optuna
import pytest

from search.study.observer import StudyEnd, TuneObserver, Unwatched


def test_unwatched_takes_every_message_silently(capsys: pytest.CaptureFixture[str]) -> None:
    observer: TuneObserver = Unwatched()
    study = optuna.create_study()
    observer.study_ready(["a note"], "warm start from study x")
    with observer.watch_trials(study, 2, "val/acc") as view:
        view.update_study(study)
        view.start_trial(0, 2, 10)
        view.advance()
        view.epoch_done("epoch 1")
    with observer.watch_workers(study, 2, "val/acc", ["cpu0", "cpu1"], 2) as workers:
        workers.update_study(study)
    observer.workers_crashed(["cpu1 (exit 9, log x)"], "the tail")
    observer.study_finished(StudyEnd(study, "n_trials", 0, "http://127.0.0.1:5000/#/x", False))
    assert capsys.readouterr() == ("", "")
