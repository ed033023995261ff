"""Test-time augmentation: logits averaged over deterministic transforms, in a wrapped network and in
validation."""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch

from lightning_modules.config import RunConfig
from lightning_modules.training import build_run
from lightning_modules.tta import FLIP_VIEWS, TTAWrapper, average_views, shift, view
from lightning_modules.tta_config import FLIPS, shift_name


def _parts(**evaluate: Any) -> Any:
    config = RunConfig.model_validate(
        {"data": {"dataset": "digits"}, "model": {"channels": [4, 8]}, "evaluate": evaluate}
    )
    parts = build_run(config)
    parts.module.eval()
    return parts


@pytest.mark.parametrize(
    "transforms",
    [
        ["HorizontalFlip"],
        ["HorizontalFlip", "VerticalFlip", "Transpose"],
        ["HorizontalFlip", shift_name(1, -2)],
    ],
)
def test_tta_output_equals_the_mean_of_the_transformed_inputs_outputs(transforms: list[str]) -> None:
    network = _parts().module.model
    images = torch.randn(5, 1, 8, 8)
    black = torch.tensor(-0.4).view(1, 1, 1, 1)
    outputs = [network(images)] + [network(view(name, images, black)) for name in transforms]
    expected = torch.stack(outputs).mean(0)
    with torch.no_grad():
        assert torch.allclose(TTAWrapper(network, transforms, black)(images), expected, atol=1e-6)
        assert torch.allclose(average_views(network, images, transforms, black), expected, atol=1e-6)
    assert torch.equal(FLIP_VIEWS["HorizontalFlip"](images), images.flip(3))


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (-1, 0), (0, 2), (-2, -1), (3, 1)])
def test_a_shift_is_albumentations_affine_with_the_same_fixed_translate_px(dx: int, dy: int) -> None:
    image = np.random.default_rng(100 + dx * 7 + dy).integers(1, 256, (9, 8, 1), dtype=np.uint8)
    expected = A.Affine(translate_px={"x": dx, "y": dy}, p=1.0)(image=image)["image"]
    moved = shift(torch.from_numpy(image).permute(2, 0, 1)[None].float(), dx, dy)
    assert np.array_equal(moved[0].permute(1, 2, 0).numpy().astype(np.uint8), expected.reshape(9, 8, 1))
    assert int((moved == 0).sum()) == abs(dx) * 9 + abs(dy) * 8 - abs(dx * dy)  # only the uncovered edge


def test_a_shift_of_normalized_images_fills_with_the_normalized_black() -> None:
    images = torch.full((2, 1, 4, 4), 0.7)
    moved = shift(images, 1, 0, black=torch.tensor(-0.5))
    assert torch.equal(moved[..., 0], torch.full((2, 1, 4), -0.5))
    assert torch.allclose(moved[..., 1:], images[..., 1:])


def test_validation_averages_the_logits_when_asked() -> None:
    parts = _parts(tta=["HorizontalFlip"], tta_in_validation=True)
    module = parts.module
    assert module.val_tta == ["HorizontalFlip"]
    images, labels = parts.datamodule.val_images[:6], parts.datamodule.val_labels[:6]
    with torch.no_grad():
        _, logits, _ = module.model_step((images, labels), module.val_tta)
        x = module.prepare(images)
        expected = (module.model(x) + module.model(x.flip(3))) / 2
    assert torch.allclose(logits, expected, atol=1e-6)
    assert _parts(tta=["HorizontalFlip"]).module.val_tta == []  # only when asked


def test_every_transform_a_config_may_name_has_its_tensor_op() -> None:
    assert tuple(FLIP_VIEWS) == FLIPS


def test_validation_shifts_fill_with_the_normalized_black_of_the_module() -> None:
    moved = shift_name(0, 1)
    module = _parts(tta=[moved], tta_in_validation=True).module
    images = torch.randint(1, 256, (4, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        _, logits, _ = module.model_step((images, torch.zeros(4, dtype=torch.long)), module.val_tta)
        shifted = torch.cat([torch.zeros_like(images[..., :1, :]), images[..., :-1, :]], dim=-2)
        expected = (module(images) + module(shifted)) / 2  # black pixels, normalized as the module does
    assert torch.allclose(logits, expected, atol=1e-5)
