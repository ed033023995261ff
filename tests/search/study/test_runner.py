"""`tune` tells its observer what happens, in order, and shows nothing itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial

from search.experiment.spec import validate_experiment
from search.study.observer import StudyEnd, StudyWatch
from search.study.runner import TuneOptions, plan, tune
from tests.conftest import tiny_experiment


class Recorder:
    """A `TuneObserver` (and the view of its trials) that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.end: StudyEnd | None = None

    def study_ready(self, notes: Sequence[str], warm_start: str | None) -> None:
        self.events.append(("ready", warm_start))

    @contextlib.contextmanager
    def watch_trials(self, study: optuna.Study, n_trials: int, metric: str) -> Iterator[Recorder]:
        self.events.append(("watch", n_trials, metric))
        yield self
        self.events.append(("unwatch",))

    def watch_workers(
        self, study: optuna.Study, n_trials: int, metric: str, workers: Sequence[str], epochs: int
    ) -> contextlib.AbstractContextManager[StudyWatch]:
        raise AssertionError("one worker runs in this process")

    def update_study(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        self.events.append(("study", None if trial is None else trial.number))

    def start_trial(self, number: int, epochs: int, batches: int) -> None:
        self.events.append(("start", number, epochs))

    def advance(self) -> None:
        if self.events[-1] != ("batch",):
            self.events.append(("batch",))

    def epoch_done(self, status: str) -> None:
        self.events.append(("epoch", status.split(" val/acc ")[0]))

    def workers_crashed(self, crashed: Sequence[str], log_tail: str) -> None:
        self.events.append(("crashed", list(crashed)))

    def study_finished(self, end: StudyEnd) -> None:
        self.events.append(("end", end.stopped_by, end.failed, end.on_server))
        self.end = end


def _spec() -> Any:
    return validate_experiment(tiny_experiment(search__n_trials=1, trainer__max_epochs=1))


def test_tune_tells_the_observer_each_step_and_prints_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    study = tune(_spec(), TuneOptions(study_hooks=[]), recorder)
    assert recorder.events == [
        ("ready", None),
        ("watch", 1, "val/acc"),
        ("study", None),
        ("start", 0, 1),
        ("batch",),
        ("epoch", "epoch 1"),
        ("study", 0),
        ("unwatch",),
        ("end", "n_trials", 0, False),
    ]
    assert recorder.end is not None and recorder.end.study is study
    assert recorder.end.runs_link.startswith("http://127.0.0.1:5000/#/experiments/")
    assert capsys.readouterr().err == ""


def test_without_progress_the_observer_hears_only_that_the_study_is_ready(workdir: Path) -> None:
    recorder = Recorder()
    tune(_spec(), TuneOptions(progress=False, study_hooks=[]), recorder)
    assert recorder.events == [("ready", None)]


def test_the_plan_has_a_slot_per_cpu_worker() -> None:
    slots = plan(_spec(), TuneOptions(devices="cpu", workers=2))
    assert [slot.kind for slot in slots] == ["cpu", "cpu"] and len({slot.label for slot in slots}) == 2
