"""Augmentation of whole uint8 batches with tensor ops, on the device that holds the batch.

An albumentations pipeline made only of flips, `Affine` and `Erasing` (the usual augmentation of
small images, random erasing included) has a batched form here: the same transforms with the same
probabilities and ranges, drawn per image from a seeded generator, applied to a whole batch at once
(`torch.where` for flips, one `affine_grid` + `grid_sample` for the affine part, one rectangle mask
per image for erasing). On 2 CPU cores that takes the per-image OpenCV work, about a fifth of a
small network's training step, out of the hot loop; on a GPU it keeps augmented batches on the
device instead of coming from DataLoader workers on the host. Pixel values differ from OpenCV's
only with nearest-neighbour interpolation, where a position falls exactly between two pixels
(bilinear results are pixel-identical for the same drawn values, tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lightning_modules.augment import AugmentationError, AugmentEntries, build_augmentation

__all__ = [
    "BATCHED_TRANSFORMS",
    "BatchAugmentation",
    "augmentation_for_backend",
    "batch_augmentation",
    "batched_entries",
    "unbatchable",
]

Range = tuple[float, float]
BATCHED_TRANSFORMS = ("HorizontalFlip", "VerticalFlip", "Affine", "Erasing")
ERASING_FILLS = ("random", "random_uniform")


@dataclass(frozen=True)
class Flip:
    """Flips each image along `dim` (-1: left-right, -2: up-down) with probability `p`."""

    dim: int
    p: float

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = (torch.rand(images.shape[0], generator=generator) < self.p).to(images.device)
        return torch.where(chosen.view(-1, 1, 1, 1), images.flip(self.dim), images)


@dataclass(frozen=True)
class RandomAffine:
    """Albumentations' `Affine` without shear, for a batch: with probability `p` an image is scaled
    by `scale_x`/`scale_y`, turned by `rotate` degrees and shifted by `shift_x`/`shift_y` (fractions
    of the width/height, or pixels when `in_pixels`), each drawn uniformly from its range, about the
    image's centre; uncovered pixels get `fill`. Shifts are whole pixels, as in albumentations."""

    scale_x: Range
    scale_y: Range
    shift_x: Range
    shift_y: Range
    rotate: Range
    in_pixels: bool
    keep_ratio: bool
    nearest: bool
    fill: float
    p: float

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = torch.nonzero(torch.rand(images.shape[0], generator=generator) < self.p).flatten()
        if chosen.numel() == 0:
            return images
        height, width = images.shape[-2:]
        theta = self.sampling_matrices(chosen.numel(), height, width, generator).to(images.device)
        chosen = chosen.to(images.device)
        picked = images.index_select(0, chosen).float()
        grid = F.affine_grid(theta, list(picked.shape), align_corners=False)
        mode = "nearest" if self.nearest else "bilinear"
        moved = F.grid_sample(picked - self.fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
        out = images.clone()
        out[chosen] = (moved + self.fill).round_().clamp_(0, 255).to(images.dtype)
        return out

    def sampling_matrices(
        self, count: int, height: int, width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """(count, 2, 3) matrices taking output to input positions in `affine_grid`'s [-1, 1] space."""

        def draw(bounds: Range) -> torch.Tensor:
            low, high = bounds
            return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)

        scale_x = draw(self.scale_x)
        scale_y = scale_x if self.keep_ratio else draw(self.scale_y)
        angle = draw(self.rotate) * (math.pi / 180)
        # whole pixels, as albumentations shifts: a fraction of the size truncated, or pixels inclusive
        if self.in_pixels:
            shift_x, shift_y = (
                _whole_pixels(self.shift_x, count, generator),
                _whole_pixels(self.shift_y, count, generator),
            )
        else:
            shift_x, shift_y = (draw(self.shift_x) * width).trunc(), (draw(self.shift_y) * height).trunc()
        cos, sin = torch.cos(angle), torch.sin(angle)
        # forward, in pixels about the centre (y down): out = R(angle) @ diag(scale) @ in + shift
        forward = torch.stack(
            [
                torch.stack([cos * scale_x, sin * scale_y], -1),
                torch.stack([-sin * scale_x, cos * scale_y], -1),
            ],
            -2,
        )
        inverse = torch.linalg.inv(forward)
        half = torch.tensor([width / 2, height / 2], dtype=torch.float64)
        linear = inverse * half.view(1, 1, 2) / half.view(1, 2, 1)  # D^-1 A^-1 D
        offset = -(inverse @ torch.stack([shift_x, shift_y], -1).unsqueeze(-1)).squeeze(-1) / half
        return torch.cat([linear, offset.unsqueeze(-1)], -1).float()


@dataclass(frozen=True)
class RandomErasing:
    """Albumentations' `Erasing` (random erasing, Zhong et al. 2017), for a batch: with probability `p`
    one rectangle per image, of an area drawn from `scale` (shares of the image) and an aspect ratio
    (width / height) drawn from `ratio` within what fits, is filled with `fill`: a pixel value,
    `random` (a value per pixel) or `random_uniform` (one value per rectangle)."""

    scale: Range
    ratio: Range
    fill: float | str
    p: float

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count, _, height, width = images.shape
        holes = self.holes(count, height, width, generator)
        if holes is None:
            return images
        left, top, right, bottom = (column.view(-1, 1, 1, 1).to(images.device) for column in holes.unbind(1))
        rows = torch.arange(height, device=images.device).view(1, 1, -1, 1)
        columns = torch.arange(width, device=images.device).view(1, 1, 1, -1)
        inside = (rows >= top) & (rows < bottom) & (columns >= left) & (columns < right)
        return torch.where(inside, self.filling(images.shape, generator).to(images), images)

    def holes(self, count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor | None:
        """(count, 4) rectangles `[left, top, right, bottom)` as albumentations draws them; an image
        left as it is gets an empty one. None when no rectangle fits the image at all."""
        area = height * width
        (scale_low, scale_high), (ratio_low, ratio_high) = self.scale, self.ratio
        largest = min(area * scale_high, ratio_low * height * height, width * width / ratio_high)
        smallest = area * scale_low
        if largest < smallest:
            return None

        def between(low: torch.Tensor | float, high: torch.Tensor | float) -> torch.Tensor:
            return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)

        chosen = torch.rand(count, generator=generator) < self.p
        erased = between(smallest, largest)
        ratio_min = torch.clamp(erased / (height * height), min=ratio_low)
        ratio_max = torch.clamp(width * width / erased, max=ratio_high)
        ratio = between(ratio_min, ratio_max)
        hole_height = torch.sqrt(erased / ratio).round().long()
        hole_width = torch.sqrt(erased * ratio).round().long()
        top = (between(0.0, 1.0) * (height - hole_height + 1)).floor().long()
        left = (between(0.0, 1.0) * (width - hole_width + 1)).floor().long()
        keep = (chosen & (ratio_min <= ratio_max)).long()
        return torch.stack([left, top, left + hole_width * keep, top + hole_height * keep], 1)

    def filling(self, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        """What an erased pixel becomes: the fill value, or uint8 noise for the random fills."""
        if not isinstance(self.fill, str):
            return torch.full((1, 1, 1, 1), round(self.fill), dtype=torch.uint8)
        size = (*shape[:2], 1, 1) if self.fill == "random_uniform" else tuple(shape)
        return torch.randint(0, 256, size, generator=generator, dtype=torch.uint8)


@dataclass(frozen=True)
class BatchAugmentation:
    """The batched steps of a pipeline, in order."""

    steps: tuple[Callable[[torch.Tensor, torch.Generator], torch.Tensor], ...]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copies of uint8 images (N, C, H, W), drawn from `generator` (a CPU generator)."""
        for step in self.steps:
            images = step(images, generator)
        return images


def unbatchable(compose: Any) -> list[str]:
    """The transforms of an albumentations `Compose` that have no batched form here, with why."""
    return [reason for transform in compose.transforms if (reason := _why_not(transform))]


def batch_augmentation(compose: Any) -> BatchAugmentation | None:
    """The batched form of an albumentations `Compose`, or None when a transform has none."""
    if unbatchable(compose):
        return None
    return _batch_of(compose)


def augmentation_for_backend(compose: Any, backend: str) -> BatchAugmentation | None:
    """What `data.augment_backend` asks for: the batched form of `compose` (`batched`, or `auto` when
    every transform has one), or None to augment per image; raises `AugmentationError` for `batched`
    with a transform that has no batched form."""
    if compose is None or backend == "albumentations":
        return None
    missing = unbatchable(compose)
    if missing and backend == "batched":
        raise AugmentationError(
            f"data.augment_backend: batched has no batched form of {', '.join(missing)}; "
            "set data.augment_backend: auto (or albumentations) to augment per image instead."
        )
    return None if missing else _batch_of(compose)


def batched_entries(entries: AugmentEntries, backend: str) -> BatchAugmentation | None:
    """`augmentation_for_backend` of the pipeline that `augment:` entries build."""
    return augmentation_for_backend(build_augmentation(entries), backend)


def _batch_of(compose: Any) -> BatchAugmentation:
    return BatchAugmentation(tuple(_batched(transform) for transform in compose.transforms))


def _why_not(transform: Any) -> str:
    name = type(transform).__name__
    if name in ("HorizontalFlip", "VerticalFlip"):
        return ""
    if name == "Erasing":
        fill = transform.fill
        return (
            ""
            if isinstance(fill, (int, float)) or fill in ERASING_FILLS
            else "Erasing with an inpainting or per-channel fill"
        )
    if name != "Affine":
        return f"{name} (batched: {', '.join(BATCHED_TRANSFORMS)})"
    shear = transform.shear
    if any(bound != 0 for bounds in shear.values() for bound in bounds):
        return "Affine with shear"
    if transform.fit_output or transform.balanced_scale:
        return "Affine with fit_output or balanced_scale"
    if transform.border_mode != 0 or not isinstance(transform.fill, (int, float)):
        return "Affine with a border_mode other than constant, or a fill per channel"
    if transform.interpolation not in (0, 1):
        return "Affine with an interpolation other than nearest or linear"
    return ""


def _batched(transform: Any) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    name = type(transform).__name__
    if name == "HorizontalFlip":
        return Flip(-1, float(transform.p))
    if name == "VerticalFlip":
        return Flip(-2, float(transform.p))
    if name == "Erasing":
        fill = transform.fill if isinstance(transform.fill, str) else float(transform.fill)
        return RandomErasing(_bounds(transform.scale), _bounds(transform.ratio), fill, float(transform.p))
    in_pixels = transform.translate_percent is None
    shift = transform.translate_px if in_pixels else transform.translate_percent
    return RandomAffine(
        scale_x=_bounds(transform.scale["x"]),
        scale_y=_bounds(transform.scale["y"]),
        shift_x=_bounds(shift["x"]),
        shift_y=_bounds(shift["y"]),
        rotate=_bounds(transform.rotate),
        in_pixels=in_pixels,
        keep_ratio=bool(transform.keep_ratio),
        nearest=transform.interpolation == 0,
        fill=float(transform.fill),
        p=float(transform.p),
    )


def _whole_pixels(bounds: Range, count: int, generator: torch.Generator) -> torch.Tensor:
    low, high = int(bounds[0]), int(bounds[1])
    return torch.randint(low, high + 1, (count,), generator=generator).double()


def _bounds(values: Sequence[float]) -> Range:
    low, high = values
    return float(low), float(high)
