"""Which test-time augmentations a config may name: deterministic ones, each once, checked without
torch; Transpose only for square images."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from lightning_modules.config import EvaluateConfig
from lightning_modules.tta_config import TRANSFORMS, check_image_size, is_random, tta_name


@pytest.mark.parametrize(
    ("tta", "message"),
    [
        (["GaussNoise"], "but got 'GaussNoise' (it is not deterministic: albumentations draws"),
        (["Affine"], "tta takes deterministic transforms that run inside the exported model"),
        ([{"HorizontalFlip": {"p": 0.5}}], "takes no options but p: 1, but got {'p': 0.5}."),
        (["HorizontalFlip", "HorizontalFlip"], "tta lists HorizontalFlip more than once"),
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


def test_random_transforms_are_told_apart() -> None:
    assert is_random("GaussNoise") and not is_random("HorizontalFlip")
    assert not is_random("NoSuchTransform")
    assert set(TRANSFORMS) == {"HorizontalFlip", "VerticalFlip", "Transpose"}
    with pytest.raises(ValueError, match="each tta entry names one transform"):
        tta_name(["HorizontalFlip"])
