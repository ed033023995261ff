"""Whole image tensors: resized with antialiasing, and per-channel statistics, in bounded chunks."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.data import pixels
from lightning_modules.data.pixels import channel_stats, resize_images


def test_resize_keeps_uint8_and_constant_images() -> None:
    images = torch.full((5, 3, 8, 6), 77, dtype=torch.uint8)
    resized = resize_images(images, (16, 12))
    assert resized.shape == (5, 3, 16, 12) and resized.dtype == torch.uint8
    assert bool((resized == 77).all())


def test_chunked_work_gives_what_one_pass_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.randint(0, 256, (9, 2, 10, 10), dtype=torch.uint8)
    whole, (mean, std) = resize_images(images, (5, 5)), channel_stats(images)
    expected = images.double() / 255
    assert mean == pytest.approx(expected.mean(dim=(0, 2, 3)).tolist())
    assert std == pytest.approx(expected.std(dim=(0, 2, 3), unbiased=False).tolist())
    assert pixels._chunk(2 * 10 * 10) == 4096 and pixels._chunk(2**30) == 1  # at least one image
    monkeypatch.setattr(pixels, "_CHUNK", 2)  # 5 chunks of at most 2 images
    assert torch.equal(resize_images(images, (5, 5)), whole)
    assert channel_stats(images)[0] == pytest.approx(mean)
