"""Every trial of a worker is followed by a memory release; the coordinating process drops preflight's data.

(`search.parallel.memory` itself: tests/search/parallel/test_memory.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_modules.config import DataConfig
from lightning_modules.data import ImageDataModule, load_dataset
from lightning_modules.data.sources import _load_cached
from lightning_modules.data.splits import _last_setup
from search.study.runner import release_preflight_data


def test_release_preflight_data_forgets_the_decoded_dataset_and_splits() -> None:
    load_dataset("digits")
    ImageDataModule(DataConfig(dataset="digits")).setup()
    assert _load_cached.cache_info().currsize > 0 and _last_setup
    release_preflight_data()
    assert _load_cached.cache_info().currsize == 0
    assert not _last_setup


def test_every_trial_of_a_worker_is_followed_by_a_release(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    import search.study.trial_loop as study_module
    from search.study.storage import open_storage

    releases: list[int] = []
    monkeypatch.setattr(study_module, "release_memory", lambda: releases.append(1) or True)
    handle = open_storage(str(workdir / "journal.log"))
    study = optuna.create_study(storage=handle.storage, study_name="release")
    study_module.run_worker(study, handle, lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    assert len(study.trials) == 3
    assert len(releases) == 3


@pytest.mark.parametrize(("workers", "released"), [(1, False), (2, True)])
def test_tune_drops_preflight_data_only_before_starting_a_pool(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, workers: int, released: bool
) -> None:
    import search.study.runner as runner
    from search.experiment.spec import validate_experiment
    from search.study.trial_loop import WorkerResult
    from tests.conftest import tiny_experiment

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
