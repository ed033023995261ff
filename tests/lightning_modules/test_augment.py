"""Albumentations pipelines from `augment:` entries: what builds, and the one-line errors otherwise."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from lightning_modules.augment import AugmentationError, build_augmentation, validate_augmentation

GOOD = [
    {"HorizontalFlip": {"p": 0.5}},
    {"Affine": {"translate_percent": [-0.08, 0.08], "p": 0.5}},
    {"OneOf": {"transforms": [{"Blur": None}, {"GaussNoise": {}}], "p": 0.3}},
]


def _error(entries: list) -> str:
    with pytest.raises(AugmentationError) as caught:
        build_augmentation(entries)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_good_pipeline_builds_and_keeps_uint8_shape() -> None:
    compose = build_augmentation(GOOD, seed=0)
    assert isinstance(compose, A.Compose)
    assert [type(t).__name__ for t in compose.transforms] == ["HorizontalFlip", "Affine", "OneOf"]
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    out = compose(image=image)["image"]
    assert out.shape == (8, 8, 1) and out.dtype == np.uint8
    assert validate_augmentation(GOOD) == []


def test_empty_list_means_no_augmentation() -> None:
    assert build_augmentation([]) is None
    assert validate_augmentation([]) == []


def test_typo_in_name_lists_close_match() -> None:
    message = _error([{"HorizontalFlip": None}, {"HorizantalFlip": {"p": 0.5}}])
    assert "augment[1]" in message and "'HorizantalFlip'" in message and "HorizontalFlip" in message
    assert isinstance(AugmentationError("x"), ValueError)


def test_unknown_argument_names_transform_argument_and_accepted() -> None:
    message = _error([{"HorizontalFlip": {"prob": 0.5}}])
    assert "HorizontalFlip has no argument 'prob'" in message and "accepts: p." in message
    message = _error([{"Affine": {"rotation": 10}}])
    assert "Affine has no argument 'rotation'; did you mean 'rotate'?" in message


def test_missing_required_argument() -> None:
    message = _error([{"RandomCrop": {"height": 4}}])
    assert "RandomCrop needs width" in message


def test_albumentations_validation_error_becomes_one_line() -> None:
    message = _error([{"Affine": {"translate_percent": "far"}}])
    assert message.startswith("augment[0]: Affine rejected its arguments: translate_percent='far'")
    assert "pydantic" not in message


@pytest.mark.parametrize("name", ["Normalize", "ToTensorV2", "ToFloat"])
def test_normalize_and_tensor_conversion_are_refused(name: str) -> None:
    message = _error([{name: {}}])
    assert f"{name} is not allowed" in message and "on the device itself" in message


def test_nested_entries_are_checked_with_their_path() -> None:
    message = _error([{"OneOf": {"transforms": [{"Blurr": {}}]}}])
    assert "augment[0].OneOf.transforms[0]" in message and "Blur" in message


def test_validate_lists_every_problem() -> None:
    problems = validate_augmentation(
        [
            {"HorizantalFlip": {}},
            {"Affine": {"foo": 1}},
            {"Normalize": None},
            {"HorizontalFlip": {"p": 2}},
            {"VerticalFlip": {"p": 0.5}},
            "Blur",
        ]
    )
    assert len(problems) == 5
    assert [p.split(":")[0].split(" ")[0] for p in problems] == [
        "augment[0]",
        "augment[1]",
        "augment[2]",
        "augment[3]",
        "augment[5]",
    ]
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize(
    ("arguments", "advice"),
    [
        ({"translate_percent": 0.08}, "translate_percent: [-0.08, 0.08]"),
        ({"rotate": 15, "p": 0.5}, "rotate: [-15, 15]"),
        ({"scale": 0.9}, "scale: [0.9, 1.1]"),
    ],
)
def test_affine_number_that_albumentations_reads_as_a_fixed_value_is_refused(
    arguments: dict, advice: str
) -> None:
    message = _error([{"Affine": arguments}])
    assert message.startswith("augment[0]: Affine reads") and "as one fixed value" in message
    assert f"for a random value write {advice}" in message


def test_affine_number_is_fixed_indeed_and_ranges_or_neutral_numbers_are_accepted() -> None:
    dot = np.zeros((28, 28, 1), dtype=np.uint8)
    dot[14, 14] = 255
    fixed = A.Compose([A.Affine(translate_percent=0.08, p=1.0)], seed=0)
    moved_to = {tuple(np.argwhere(fixed(image=dot)["image"][..., 0])[0]) for _ in range(8)}
    assert moved_to == {(16, 16)}  # the trap the check guards against: one fixed shift, every time
    ranged = [{"Affine": {"translate_percent": [-0.08, 0.08], "rotate": 0, "scale": 1, "p": 1.0}}]
    assert validate_augmentation(ranged) == []
    compose = build_augmentation(ranged, seed=0)
    assert compose is not None
    moved_to = {tuple(np.argwhere(compose(image=dot)["image"][..., 0] > 0)[0]) for _ in range(8)}
    assert len(moved_to) > 1
