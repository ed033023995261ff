"""`tune` tells its observer what happens, in order, and shows nothing itself; preflight's decoded data
is dropped before a worker pool starts, and kept for a trial run here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial

from lightning_modules.config import DataConfig
from lightning_modules.data import ImageDataModule, load_dataset
from lightning_modules.data.sources import _load_cached
from lightning_modules.data.splits import _last_setup
from search.experiment.spec import validate_experiment
from search.study.observer import StudyEnd, StudyWatch
from search.study.runner import TuneOptions, plan, release_preflight_data, tune
from tests.conftest import tiny_experiment


class Recorder:
    """A `TuneObserver` (and the view of its trials) that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.end: StudyEnd | None = None

    def study_ready(self, notes: Sequence[str], warm_start: str | None) -> None:
        self.events.append(("ready", warm_start))
        self.notes = list(notes)

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


def test_resuming_a_study_that_holds_its_n_trials_already_says_so(workdir: Path) -> None:
    tune(_spec(), TuneOptions(progress=False, study_hooks=[]), Recorder())
    recorder = Recorder()
    study = tune(_spec(), TuneOptions(progress=False, study_hooks=[]), recorder)
    assert len(study.trials) == 1, "n_trials is the trials the study should hold: nothing more ran"
    assert recorder.notes[-1] == (
        "study tiny already holds 1 finished trial and n_trials is 1 (the trials it should hold, not "
        "more to run): nothing to train; --n-trials 2 runs 1 more."
    )


def test_the_plan_has_a_slot_per_cpu_worker() -> None:
    slots = plan(_spec(), TuneOptions(devices="cpu", workers=2))
    assert [slot.kind for slot in slots] == ["cpu", "cpu"] and len({slot.label for slot in slots}) == 2


def test_release_preflight_data_forgets_the_decoded_dataset_and_splits() -> None:
    load_dataset("digits")
    ImageDataModule(DataConfig(dataset="digits")).setup()
    assert _load_cached.cache_info().currsize > 0 and _last_setup
    release_preflight_data()
    assert _load_cached.cache_info().currsize == 0
    assert not _last_setup


@pytest.mark.parametrize(("workers", "released"), [(1, False), (2, True)])
def test_tune_drops_preflight_data_only_before_starting_a_pool(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, workers: int, released: bool
) -> None:
    import search.study.runner as runner
    from search.study.trial_loop import WorkerResult

    def stand_in(*args: object) -> WorkerResult:
        runs.append("pool" if isinstance(args[3], list) else "here")  # _run_pool gets the slot list
        runs.append("cache kept" if _load_cached.cache_info().currsize else "cache dropped")
        return WorkerResult(0, 0, "n_trials")

    runs: list[str] = []
    monkeypatch.setattr(runner, "_run_here", stand_in)
    monkeypatch.setattr(runner, "_run_pool", stand_in)
    spec = validate_experiment(tiny_experiment())
    runner.tune(spec, runner.TuneOptions(progress=False, devices="cpu", workers=workers, study_hooks=[]))
    assert runs == ["pool" if workers > 1 else "here", "cache dropped" if released else "cache kept"]
