"""Batched augmentation: pixel-identical to albumentations for the same drawn values, drawn per image
within the same ranges, seeded per epoch in the loader, and chosen by `data.augment_backend`."""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch

from lightning_modules.augment import AugmentationError, build_augmentation
from lightning_modules.batch_augment import Flip, batch_augmentation, unbatchable
from lightning_modules.config import DataConfig
from lightning_modules.data import ImageDataModule, InMemoryLoader, load_dataset

SHIFT_AND_FLIP = [{"HorizontalFlip": {"p": 0.5}}, {"Affine": {"translate_percent": [-0.1, 0.1], "p": 0.5}}]


def _digit(height: int = 24, width: int = 20) -> np.ndarray:
    """A real digit scaled up, cut to a non-square size so that x and y cannot be confused."""
    image = np.kron(load_dataset("digits").train_images[0, 0].numpy(), np.ones((3, 3), dtype=np.uint8))
    return np.ascontiguousarray(image[:height, :width, None])


def _batched(compose: A.Compose, image: np.ndarray, seed: int = 0) -> np.ndarray:
    augment = batch_augmentation(compose)
    assert augment is not None
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    return augment(batch, torch.Generator().manual_seed(seed))[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "arguments",
    [
        {"translate_percent": [0.1, 0.1]},
        {"translate_percent": [-0.13, -0.13], "rotate": [20, 20]},
        {"translate_px": [3, 3], "rotate": [-30, -30], "scale": [1.2, 1.2]},
        {"scale": {"x": [0.7, 0.7], "y": [1.1, 1.1]}, "rotate": [15, 15]},
        {"rotate": [45, 45], "fill": 40},
    ],
)
def test_affine_is_pixel_identical_to_albumentations_for_the_same_values(arguments: dict[str, Any]) -> None:
    compose = A.Compose([A.Affine(p=1.0, **arguments)], seed=0)
    image = _digit()
    expected = compose(image=image)["image"]
    assert np.array_equal(_batched(compose, image), expected.reshape(image.shape))


def test_nearest_interpolation_differs_from_opencv_only_where_a_position_ties() -> None:
    compose = A.Compose([A.Affine(rotate=[45, 45], interpolation=0, p=1.0)], seed=0)
    image = _digit()
    differing = _batched(compose, image) != compose(image=image)["image"].reshape(image.shape)
    assert 0 < differing.sum() <= 0.01 * image.size


def test_flips_apply_with_their_probability_and_nothing_else() -> None:
    images = torch.arange(64 * 12, dtype=torch.uint8).reshape(64, 1, 3, 4)
    flipped = Flip(-1, 0.5)(images, torch.Generator().manual_seed(0))
    as_is = (flipped == images).flatten(1).all(1)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert bool((as_is | mirrored).all()) and 16 < int(mirrored.sum()) < 48
    assert torch.equal(Flip(-2, 1.0)(images, torch.Generator()), images.flip(-2))
    assert torch.equal(Flip(-1, 0.0)(images, torch.Generator()), images)


def test_random_shifts_are_whole_pixels_within_the_range_and_differ_per_image() -> None:
    compose = build_augmentation([{"Affine": {"translate_percent": [-0.1, 0.1], "p": 1.0}}])
    assert compose is not None
    dots = torch.zeros(200, 1, 30, 30, dtype=torch.uint8)
    dots[:, 0, 15, 15] = 255
    moved = batch_augmentation(compose)(dots, torch.Generator().manual_seed(0))  # type: ignore[misc]
    where = torch.nonzero(moved[:, 0] == 255)
    assert where.shape[0] == 200  # one whole, unblurred dot per image
    shifts = where[:, 1:] - 15
    assert int(shifts.abs().max()) == 2  # trunc(u * 30), |u| < 0.1, as albumentations shifts
    assert len({tuple(s) for s in shifts.tolist()}) > 20


def test_transforms_without_a_batched_form_are_named() -> None:
    compose = build_augmentation([*SHIFT_AND_FLIP, {"CoarseDropout": {}}, {"Affine": {"shear": [-5, 5]}}])
    assert unbatchable(compose) == [
        "CoarseDropout (batched: HorizontalFlip, VerticalFlip, Affine, Erasing)",
        "Affine with shear",
    ]
    assert batch_augmentation(compose) is None
    inpainting = build_augmentation([{"Erasing": {"fill": "inpaint_telea"}}])
    assert unbatchable(inpainting) == ["Erasing with an inpainting or per-channel fill"]


def _erased(images: torch.Tensor, erased: torch.Tensor) -> torch.Tensor:
    """Per image, which pixels the erasing changed (any channel)."""
    return (images != erased).any(1)


def _rectangle_sides(changed: torch.Tensor) -> tuple[int, int]:
    """The height and width of the one rectangle that `changed` (H, W) must be."""
    rows, columns = torch.nonzero(changed, as_tuple=True)
    height = int(rows.max() - rows.min()) + 1
    width = int(columns.max() - columns.min()) + 1
    assert int(changed.sum()) == height * width, "the erased pixels are not one filled rectangle"
    return height, width


def test_erasing_fills_one_rectangle_per_chosen_image_within_the_area_and_ratio_ranges() -> None:
    compose = build_augmentation([{"Erasing": {"scale": [0.05, 0.2], "ratio": [0.5, 2.0], "p": 0.5}}])
    images = torch.full((400, 3, 28, 28), 200, dtype=torch.uint8)
    erased = batch_augmentation(compose)(images, torch.Generator().manual_seed(0))  # type: ignore[misc]
    changed = _erased(images, erased)
    chosen = changed.flatten(1).any(1)
    assert 160 < int(chosen.sum()) < 240
    assert bool((erased.masked_select(changed.unsqueeze(1)) == 0).all())  # the default fill: 0
    sides = [_rectangle_sides(one) for one in changed[chosen]]
    areas = torch.tensor([h * w for h, w in sides], dtype=torch.float64) / (28 * 28)
    ratios = torch.tensor([w / h for h, w in sides])
    assert areas.min() > 0.05 - 0.02 and areas.max() < 0.2 + 0.02  # whole-pixel sides round the area
    assert ratios.min() > 0.5 * 0.8 and ratios.max() < 2.0 * 1.25
    assert len(set(sides)) > 20 and len({tuple(torch.nonzero(c)[0].tolist()) for c in changed[chosen]}) > 50


def test_erased_areas_follow_albumentations_distribution() -> None:
    arguments = {"scale": [0.02, 0.33], "ratio": [0.3, 3.3], "fill": 255, "p": 1.0}
    compose = A.Compose([A.Erasing(**arguments)], seed=0)
    blank = np.zeros((28, 28, 1), dtype=np.uint8)
    theirs = np.array([(compose(image=blank)["image"] == 255).mean() for _ in range(2000)])
    images = torch.zeros(2000, 1, 28, 28, dtype=torch.uint8)
    ours = (batch_augmentation(compose)(images, torch.Generator().manual_seed(0)) == 255).double()  # type: ignore[misc]
    ours_per_image = ours.flatten(1).mean(1).numpy()
    for quantile in (0.1, 0.5, 0.9):
        assert abs(np.quantile(ours_per_image, quantile) - np.quantile(theirs, quantile)) < 0.02
    assert theirs.min() > 0 and ours_per_image.min() > 0  # p=1: every image has its rectangle


def test_erasing_random_fills_draw_noise_per_pixel_or_one_value_per_rectangle() -> None:
    images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    for fill, most_values_in_a_rectangle in (("random", 256), ("random_uniform", 3)):
        compose = build_augmentation([{"Erasing": {"fill": fill, "scale": [0.2, 0.3], "p": 1.0}}])
        erased = batch_augmentation(compose)(images, torch.Generator().manual_seed(1))  # type: ignore[misc]
        changed = _erased(images, erased)
        values = [erased[i][:, changed[i]].unique().numel() for i in range(64) if changed[i].any()]
        assert len(values) > 50 and max(values) <= most_values_in_a_rectangle
        assert max(values) > (100 if fill == "random" else 1)


def test_erasing_that_cannot_fit_the_image_leaves_it_as_it_is() -> None:
    compose = build_augmentation([{"Erasing": {"scale": [0.9, 0.95], "ratio": [3.0, 3.3], "p": 1.0}}])
    images = torch.full((8, 1, 10, 10), 7, dtype=torch.uint8)
    assert torch.equal(batch_augmentation(compose)(images, torch.Generator()), images)  # type: ignore[misc]


def test_loader_augments_each_epoch_alike_from_seed_and_epoch_only() -> None:
    compose = build_augmentation(SHIFT_AND_FLIP)
    images, labels = load_dataset("digits").train_images[:96], torch.arange(96)

    def epoch(number: int, seed: int = 0, augmented: bool = True) -> list[torch.Tensor]:
        augment = batch_augmentation(compose) if augmented else None
        loader = InMemoryLoader(images, labels, 32, shuffle=True, seed=seed, augment=augment)
        loader.set_epoch(number)
        return [batch for batch, _ in loader]

    first = epoch(2)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(2), strict=True))
    assert not torch.equal(torch.cat(first), torch.cat(epoch(3)))
    assert not torch.equal(torch.cat(first), torch.cat(epoch(2, seed=1)))
    assert not torch.equal(torch.cat(first), torch.cat(epoch(2, augmented=False)))


def _module(augment: list[dict[str, Any]], backend: str) -> ImageDataModule:
    data = DataConfig(dataset="digits", batch_size=64, num_workers=0, augment_backend=backend)  # type: ignore[arg-type]
    module = ImageDataModule(data, augment, seed=0)
    module.setup()
    return module


def test_backend_auto_batches_when_it_can_and_augments_per_image_otherwise() -> None:
    assert isinstance(_module(SHIFT_AND_FLIP, "auto").train_dataloader(), InMemoryLoader)
    per_image = _module([*SHIFT_AND_FLIP, {"CoarseDropout": {}}], "auto").train_dataloader()
    assert isinstance(per_image, torch.utils.data.DataLoader)
    assert isinstance(
        _module(SHIFT_AND_FLIP, "albumentations").train_dataloader(), torch.utils.data.DataLoader
    )
    images, _ = next(iter(_module(SHIFT_AND_FLIP, "batched").train_dataloader()))
    assert images.shape == (64, 1, 8, 8) and images.dtype == torch.uint8


def test_backend_batched_refuses_a_transform_without_a_batched_form_in_one_line() -> None:
    with pytest.raises(AugmentationError) as caught:
        _module([{"CoarseDropout": {}}], "batched")
    message = str(caught.value)
    assert "\n" not in message and "no batched form of CoarseDropout" in message
    assert "set data.augment_backend: auto" in message


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_the_gpu_are_augmented_there_as_on_the_cpu() -> None:
    compose = build_augmentation(SHIFT_AND_FLIP)
    images = load_dataset("digits").train_images[:256]
    augment = batch_augmentation(compose)
    on_cpu = augment(images, torch.Generator().manual_seed(0))  # type: ignore[misc]
    on_gpu = augment(images.cuda(), torch.Generator().manual_seed(0))  # type: ignore[misc]
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)
