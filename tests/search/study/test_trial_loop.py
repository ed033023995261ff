"""The loop a worker runs: claim a trial while the study holds fewer than N, run it, tell Optuna; every
trial is followed by a memory release, and a claimed trial is open work that a crash closes as FAIL."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.experiment.spec import validate_experiment
from search.parallel import open_work
from search.study.runner import TuneOptions, tune
from search.study.storage import StorageHandle, open_storage
from search.study.trial_loop import claim_trial, register_trial, run_worker, tell
from tests.conftest import tiny_experiment


def test_a_grid_study_stops_when_the_grid_is_exhausted(workdir: Path) -> None:
    raw = tiny_experiment()
    raw["trainer"]["max_epochs"] = 1
    raw["search"]["n_trials"] = 5
    raw["search"]["sampler"] = {"name": "grid"}
    raw["search"]["space"] = {"model.kernel_size": {"choice": [3, 5]}}
    study = tune(validate_experiment(raw), TuneOptions(progress=False))
    kernels = sorted(t.params["model.kernel_size"] for t in study.get_trials())
    assert kernels == [3, 5]


def _study(workdir: Path) -> tuple[optuna.Study, StorageHandle]:
    handle = open_storage(str(workdir / "journal.log"))
    return optuna.create_study(storage=handle.storage, study_name="loop"), handle


def test_a_worker_runs_trials_until_the_study_holds_n_and_tells_their_states(workdir: Path) -> None:
    study, handle = _study(workdir)
    seen: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:
            raise optuna.TrialPruned("pruned")
        if trial.number == 2:
            raise ValueError("a crash the objective recorded")
        return x

    result = run_worker(study, handle, objective, n_trials=3, observers=[lambda _s, t: seen.append(t.number)])
    assert (result.ran, result.failed, result.stopped_by) == (4, 1, "n_trials")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    assert seen == [0, 1, 2, 3]  # the failed one did not count against n_trials
    assert open_work.still_open() == []
    assert claim_trial(study, handle, 3) is None


def test_a_worker_stops_after_too_many_failures_or_when_asked(workdir: Path) -> None:
    study, handle = _study(workdir)

    def failing(trial: optuna.Trial) -> float:
        raise RuntimeError("always")

    result = run_worker(study, handle, failing, n_trials=10, max_failures=2)
    assert (result.ran, result.failed, result.stopped_by) == (2, 2, "failures")
    stopped = run_worker(study, handle, failing, n_trials=10, should_stop=lambda: True)
    assert stopped.stopped_by == "interrupted" and stopped.ran == 0
    out = run_worker(study, handle, failing, n_trials=10, out_of_time=lambda: True)
    assert out.stopped_by == "budget"


def test_telling_a_trial_that_a_reaper_already_failed_keeps_its_state() -> None:
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)  # a reaper's false alarm on a slow worker
    assert tell(study, trial, TrialState.COMPLETE, 1.0) == TrialState.FAIL
    with pytest.raises(ValueError):
        tell(study, study.ask(), TrialState.COMPLETE, None)  # a real mistake still raises


def test_every_trial_of_a_worker_is_followed_by_a_release(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.study.trial_loop as study_module

    releases: list[int] = []
    monkeypatch.setattr(study_module, "release_memory", lambda: releases.append(1) or True)
    handle = open_storage(str(workdir / "journal.log"))
    study = optuna.create_study(storage=handle.storage, study_name="release")
    study_module.run_worker(study, handle, lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    assert len(study.trials) == 3
    assert len(releases) == 3


def test_open_work_closes_a_claimed_trial_as_fail(workdir: Path) -> None:
    handle = open_storage("journal.log")
    study = optuna.create_study(study_name="tiny", storage=handle.storage)
    trial = claim_trial(study, handle, n_trials=1)
    assert trial is not None
    key = register_trial(study, trial)
    assert key == f"optuna-trial:tiny:{trial.number}" and key in open_work.still_open()
    assert open_work.close_all("crashed") == [key]
    frozen = study.get_trials()[0]
    assert frozen.state == TrialState.FAIL and "crashed" in frozen.user_attrs["error"]
