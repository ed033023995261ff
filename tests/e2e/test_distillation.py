"""`convtune reproduce --teacher`: a tiny digits study's best trial taught by a saved model, as a single
reproduction and as an ensemble's members; a teacher that cannot be loaded stops it before any run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_modules.data.splits import load_splits
from search.cli.main import main
from search.errors import ConfigError
from search.experiment.spec import ExperimentSpec, validate_experiment
from search.reproduce.ensemble import reproduce_ensemble
from search.reproduce.options import ReproduceOptions
from search.reproduce.reproduce import reproduce
from search.reproduce.teacher import TAUGHT
from search.study.runner import TuneOptions, tune
from search.tracking.vocabulary import METRIC_TEACHER_VAL_ACC
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client
from tests.helpers.study_folder import inside_study_folder
from tests.helpers.tiny_runs import untrained_model

STUBBORN_CLASS = 3


def stubborn_teacher(path: Path) -> Path:
    """A saved model that gives every image to class 3, whatever it shows."""
    model = untrained_model([])
    head = [module for module in model.network.modules() if isinstance(module, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(STUBBORN_CLASS), head.out_features) * 20.0)
    return model.save(path)


def _runs(study: str) -> int:
    client = mlflow_client()
    experiment = client.get_experiment_by_name(study)
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ExperimentSpec, Path]]:
    with inside_study_folder(tmp_path_factory.mktemp("distil")) as folder:
        raw = tiny_experiment()
        spec = validate_experiment(raw)
        tune(spec, TuneOptions(progress=False))
        yield write_experiment(folder, raw), spec, stubborn_teacher(folder / "stubborn.pt")


def test_a_network_taught_by_the_teacher_alone_learns_what_the_teacher_says(study) -> None:  # type: ignore[no-untyped-def]
    _, spec, teacher = study
    result = reproduce(spec, ReproduceOptions(teacher=str(teacher), teacher_weight=1.0, register=False))
    data = load_splits(result.config.data, seed=result.config.seed)
    predicted = result.model.predict(data.val_images).argmax(dim=1)
    assert float((predicted == STUBBORN_CLASS).float().mean()) > 0.9  # the labels had no say
    assert result.value < 0.3
    assert not result.comparable and TAUGHT in result.changed
    assert any(note.startswith(f"taught by {teacher} (weight 1;") for note in result.config_notes)
    assert any("the teacher was trained on other splits" in note for note in result.config_notes)
    run = mlflow_client().get_run(result.run_id)
    assert run.data.params["teacher"] == str(teacher) and run.data.params["teacher_weight"] == "1.0"
    share = float((data.val_labels == STUBBORN_CLASS).float().mean())
    assert run.data.metrics[METRIC_TEACHER_VAL_ACC] == pytest.approx(share)


def test_with_weight_zero_the_teacher_changes_nothing(study) -> None:  # type: ignore[no-untyped-def]
    _, spec, teacher = study
    taught = reproduce(spec, ReproduceOptions(teacher=str(teacher), teacher_weight=0.0, register=False))
    plain = reproduce(spec, ReproduceOptions(register=False))
    assert plain.trial.number == taught.trial.number
    assert taught.value == pytest.approx(plain.value, abs=0.02)
    assert taught.value > 0.5


def test_every_member_of_an_ensemble_is_taught(study) -> None:  # type: ignore[no-untyped-def]
    _, spec, teacher = study
    result = reproduce_ensemble(
        spec, ReproduceOptions(teacher=str(teacher), teacher_weight=1.0, register=False), 2
    )
    assert any(note.startswith(f"every member is taught by {teacher} (weight 1;") for note in result.notes)
    client = mlflow_client()
    for member in result.members:
        run = client.get_run(member.run_id)
        assert run.data.params["teacher"] == str(teacher)
        assert METRIC_TEACHER_VAL_ACC in run.data.metrics
        assert member.val_accuracy < 0.3


def test_a_teacher_that_cannot_be_loaded_stops_before_any_run(
    study, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    experiment, spec, _ = study
    before = _runs("tiny")
    with pytest.raises(ConfigError, match=r"^the teacher: model missing\.pt not found"):
        reproduce(spec, ReproduceOptions(teacher="missing.pt"))
    with pytest.raises(ConfigError, match=r"^the teacher: model missing\.pt not found"):
        reproduce_ensemble(spec, ReproduceOptions(teacher="missing.pt"), 2)
    assert main(["reproduce", str(experiment), "--teacher-weight", "0.5"]) == 2
    assert "--teacher-weight weighs a teacher; give one with --teacher MODEL." in capsys.readouterr().err
    assert _runs("tiny") == before
