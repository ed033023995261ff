"""One ensembled study for the whole package: it is tuned and reproduced once (package scope)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from search.experiment.spec import validate_experiment
from search.reproduce.ensemble import reproduce_ensemble
from search.reproduce.options import ReproduceOptions
from search.study.runner import TuneOptions, tune
from tests.conftest import tiny_experiment, write_experiment
from tests.e2e.ensemble.study import NAME, Ensembled, unreadable_test_split
from tests.helpers.study_folder import inside_study_folder


@pytest.fixture(scope="package")
def ensembled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensembled]:
    """A 3-trial digits study (EMA and TTA configured), its 2 best trials ensembled and registered."""
    with inside_study_folder(tmp_path_factory.mktemp("ensemble")) as folder:
        raw = tiny_experiment(
            trainer={"max_epochs": 2, "weight_averaging": {"kind": "ema", "decay": 0.9}},
            evaluate={"tta": ["HorizontalFlip"]},
        )
        raw["search"]["n_trials"] = 3
        raw["name"] = NAME  # not `tiny`: MLflow keeps one store per URI, and other modules register `tiny`
        write_experiment(folder, raw)
        spec = validate_experiment(raw)
        with unreadable_test_split() as state:
            tune(spec, TuneOptions(progress=False))
            result = reproduce_ensemble(spec, ReproduceOptions(), 2)
        yield Ensembled(folder, result, state["calls"])


@pytest.fixture
def in_study(ensembled: Ensembled, monkeypatch: pytest.MonkeyPatch) -> Ensembled:
    monkeypatch.chdir(ensembled.folder)
    return ensembled
