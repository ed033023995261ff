"""Every check that needs the data, before any trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.spec import load_experiment, validate_experiment
from search.study.preflight import augmentation_variants, preflight
from tests.conftest import tiny_experiment, write_experiment


def test_augmentation_arguments_in_the_space_are_checked_before_training(workdir: Path) -> None:
    raw = tiny_experiment()
    raw["augment"] = [{"Affine": {"translate_percent": [-0.1, 0.1], "p": 0.5}}]
    raw["search"]["space"] = {"augment.0.Affine.p": {"float": [0.0, 1.0]}}
    assert preflight(validate_experiment(raw)).num_classes == 10
    raw["search"]["space"] = {"augment.0.Affine.rotate": {"choice": [0, "lots"]}}
    with pytest.raises(ConfigError, match=r"^augment\[0\]: Affine rejected its arguments: rotate='lots'"):
        preflight(validate_experiment(raw))  # the entry named once, not "augment: augment[0]: ..."


def test_augmentation_variants_are_the_base_and_one_per_value_of_a_searched_argument() -> None:
    raw = tiny_experiment()
    raw["augment"] = [{"Affine": {"translate_percent": [-0.1, 0.1], "p": 0.5}}]
    raw["search"]["space"] = {
        "augment.0.Affine.p": {"choice": [0.2, 0.8]},
        "optim.lr": {"float": [1e-3, 1e-2]},
    }
    variants = augmentation_variants(validate_experiment(raw))
    assert [variant[0]["Affine"]["p"] for variant in variants] == [0.5, 0.2, 0.8]
    assert all(variant[0]["Affine"]["translate_percent"] == [-0.1, 0.1] for variant in variants)


def test_batched_backend_with_a_transform_it_cannot_batch_is_refused_before_training(workdir: Path) -> None:
    raw = tiny_experiment()
    raw["augment"] = [{"HorizontalFlip": {"p": 0.5}}, {"CoarseDropout": {}}]
    raw["data"]["augment_backend"] = "batched"
    with pytest.raises(ConfigError, match="no batched form of CoarseDropout"):
        preflight(validate_experiment(raw))
    raw["data"]["augment_backend"] = "auto"
    assert preflight(validate_experiment(raw)).num_classes == 10


def test_a_searched_key_that_set_fixed_is_noted_before_any_trial(workdir: Path, tmp_path: Path) -> None:
    path = write_experiment(tmp_path, tiny_experiment())
    notes = preflight(load_experiment(path, ["optim.lr=0.05"])).notes
    assert notes[0] == "--set fixes optim.lr, which the experiment file searches: it is no longer searched."
    assert not any("--set" in note for note in preflight(load_experiment(path)).notes)
