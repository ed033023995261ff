"""Which test-time augmentations a config may name: deterministic ones, each once, checked without
torch; Transpose only for square images."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from lightning_modules.config import EvaluateConfig
from lightning_modules.tta_config import FLIPS, check_image_size, is_random, shift_of, tta_name


@pytest.mark.parametrize(
    ("tta", "message"),
    [
        (["GaussNoise"], "but got 'GaussNoise' (it is not deterministic: albumentations draws"),
        (["Affine"], "tta takes deterministic transforms that run inside the exported model"),
        ([{"HorizontalFlip": {"p": 0.5}}], "it takes p: 1 or no p, but got {'p': 0.5}."),
        (["HorizontalFlip", "HorizontalFlip"], "tta lists HorizontalFlip more than once"),
        (
            [{"Affine": {"translate_px": [-2, 2]}}],
            "tta Affine is a fixed shift, written {Affine: {translate_px",
        ),
        ([{"Affine": {"translate_px": {"x": 0.5}}}], "shifts by whole pixels, one number per axis"),
        ([{"Affine": {"translate_px": {"x": 1}, "fill": 3}}], "(remove fill)."),
        ([{"Affine": {"translate_px": {"x": 0, "y": 0}}}], "tta Affine shifts by 0 pixels"),
        ([{"Affine": {"translate_px": {"x": 1}}}, "Affine(translate_px={x: 1, y: 0})"], "more than once"),
    ],
)
def test_tta_refuses_random_unknown_and_repeated_transforms(tta: list[Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        EvaluateConfig.model_validate({"tta": tta})


def test_tta_config_forms() -> None:
    config = EvaluateConfig.model_validate({"tta": ["HorizontalFlip", {"VerticalFlip": {"p": 1}}]})
    assert config.tta == ["HorizontalFlip", "VerticalFlip"]
    with pytest.raises(ValidationError, match="tta_in_validation needs transforms"):
        EvaluateConfig.model_validate({"tta_in_validation": True})
    with pytest.raises(ValueError, match="Transpose needs square images, but they are 8x6"):
        check_image_size(["Transpose"], (8, 6))


@pytest.mark.parametrize(
    "entry", ["VerticalFlip", {"VerticalFlip": None}, {"VerticalFlip": {}}, {"VerticalFlip": {"p": 1}}]
)
def test_every_form_of_an_entry_names_its_transform(entry: Any) -> None:
    assert tta_name(entry) == "VerticalFlip"


@pytest.mark.parametrize(
    "entry",
    [
        {"Affine": {"translate_px": {"x": -1, "y": 2}}},
        {"Affine": {"translate_px": {"y": 2, "x": -1}, "p": 1}},
        "Affine(translate_px={x: -1, y: 2})",
    ],
)
def test_a_fixed_shift_has_one_canonical_name(entry: Any) -> None:
    name = tta_name(entry)
    assert name == "Affine(translate_px={x: -1, y: 2})" and shift_of(name) == (-1, 2)
    assert tta_name(name) == name  # a stored description is checked again when it is loaded
    with pytest.raises(ValueError, match=re.escape("shifts the whole 8x6 image out of view")):
        check_image_size([tta_name({"Affine": {"translate_px": {"x": 6}}})], (8, 6))
    check_image_size([name], (8, 6))


def test_random_transforms_are_told_apart() -> None:
    assert is_random("GaussNoise") and not is_random("HorizontalFlip")
    assert not is_random("NoSuchTransform")
    assert set(FLIPS) == {"HorizontalFlip", "VerticalFlip", "Transpose"}
    with pytest.raises(ValueError, match="each tta entry names one transform"):
        tta_name(["HorizontalFlip"])
