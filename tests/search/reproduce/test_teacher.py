"""`search.reproduce.teacher`: which teacher is asked for, and what it checks and teaches."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from lightning_modules.config import DataConfig
from lightning_modules.data.splits import load_splits
from search.errors import ConfigError
from search.experiment.spec import TeacherConfig, validate_experiment
from search.reproduce.options import ReproduceOptions
from search.reproduce.selection import accuracy
from search.reproduce.teacher import Teacher, teacher_config
from search.tracking.model_store import InferenceModel
from tests.conftest import tiny_experiment
from tests.helpers.tiny_runs import untrained_model


def _spec(teacher: dict | None = None):  # type: ignore[no-untyped-def]
    return validate_experiment(tiny_experiment(reproduce={"teacher": teacher} if teacher else {}))


def test_the_flags_win_over_the_experiments_teacher() -> None:
    spec = _spec({"model": "models:/a@ensemble", "weight": 0.8})
    assert teacher_config(spec, ReproduceOptions()) == TeacherConfig(model="models:/a@ensemble", weight=0.8)
    flagged = teacher_config(spec, ReproduceOptions(teacher="b.pt", teacher_weight=0.3))
    assert flagged == TeacherConfig(model="b.pt", weight=0.3)
    assert teacher_config(spec, ReproduceOptions(teacher="b.pt")) == TeacherConfig(model="b.pt", weight=0.8)
    assert teacher_config(_spec(), ReproduceOptions(teacher="b.pt")) == TeacherConfig(
        model="b.pt", weight=0.5
    )
    assert teacher_config(_spec(), ReproduceOptions()) is None


def test_a_weight_without_a_teacher_or_out_of_range_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"^--teacher-weight weighs a teacher; give one with --teacher MODEL\."
    ):
        teacher_config(_spec(), ReproduceOptions(teacher_weight=0.5))
    with pytest.raises(
        ConfigError, match=r"--teacher-weight must be in \[0, 1\], but got --teacher-weight 2"
    ):
        ReproduceOptions(teacher="b.pt", teacher_weight=2.0)
    with pytest.raises(
        ConfigError, match=r"reproduce\.teacher\.weight.*weight must be in \[0, 1\], but got weight=1\.5"
    ):
        _spec({"model": "b.pt", "weight": 1.5})
    with pytest.raises(ConfigError, match=r"reproduce\.teacher\.model"):
        _spec({"weight": 0.5})


def test_an_unloadable_teacher_is_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        Teacher.load(TeacherConfig(model="/nowhere/teacher.pt"))
    assert str(error.value).startswith("the teacher: model /nowhere/teacher.pt not found")
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    """Digits split as `untrained_model`'s config splits them."""
    return load_splits(DataConfig(dataset="digits", batch_size=64))


def test_teaching_blends_the_labels_with_the_teachers_probabilities_predicted_once(digits) -> None:  # type: ignore[no-untyped-def]
    model = untrained_model(["HorizontalFlip"])
    teacher = Teacher("file.pt", 0.4, model)
    report = teacher.teach(digits)
    served = model.predict(digits.train_images)  # with its flip view, as it is served
    expected = 0.6 * torch.nn.functional.one_hot(digits.train_labels, 10) + 0.4 * served
    assert torch.allclose(digits._train_targets, expected, atol=1e-6)
    assert report.val_accuracy == accuracy(model.predict(digits.val_images), digits.val_labels)
    assert report.note is None  # trained on these very splits
    first = teacher.probabilities(digits.train_images)
    assert Teacher("again.pt", 0.9, copy.deepcopy(model)).probabilities(digits.train_images) is first
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.network.parameters()).add_(1.0)
    assert Teacher("again.pt", 0.4, changed).probabilities(digits.train_images) is not first


def test_a_teacher_of_other_classes_is_refused(digits) -> None:  # type: ignore[no-untyped-def]
    model = untrained_model([])
    names = [f"class {index}" for index in range(10)]
    other = InferenceModel(model.network, replace(model.description, class_names=names))
    with pytest.raises(
        ConfigError, match=r"the teacher t\.pt predicts the classes \[class 0, class 1, class 2"
    ):
        Teacher("t.pt", 0.5, other).check(digits)


def test_a_teacher_trained_on_other_splits_is_noted(digits) -> None:  # type: ignore[no-untyped-def]
    model = untrained_model([])
    other_split = replace(model.description, seed=7, data={**model.description.data, "val_fraction": 0.3})
    note = Teacher("t.pt", 0.5, InferenceModel(model.network, other_split)).split_note(digits)
    assert note is not None and "(val_fraction, seed differ)" in note
    fewer = replace(model.description, data={**model.description.data, "train_fraction": 0.3})
    assert Teacher("t.pt", 0.5, InferenceModel(model.network, fewer)).split_note(digits) is None
