"""`search.reproduce.images`: image files and dataset images fitted to a model's channels and size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from search.errors import ConfigError, ConvtuneError
from search.reproduce.images import fit_images, prepare_images
from tests.helpers.tiny_runs import write_digit_pngs


def test_prepare_images_converts_channels_and_size(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.new("L", (20, 10), color=200).save(gray)
    rgb = tmp_path / "rgb.jpg"
    Image.new("RGB", (8, 8), color=(255, 0, 0)).save(rgb)
    as_rgb = prepare_images([gray, rgb], 3, (8, 8))
    assert as_rgb.shape == (2, 3, 8, 8) and as_rgb.dtype == torch.uint8
    assert as_rgb[0].unique().tolist() == [200]
    assert as_rgb[1, 0].float().mean() > 240 and as_rgb[1, 1].float().mean() < 15
    as_gray = prepare_images([rgb], 1, (4, 4))
    assert as_gray.shape == (1, 1, 4, 4)
    assert abs(as_gray.float().mean() - 76) < 3  # PIL's luma of pure red: 0.299 * 255


def test_unreadable_image_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ConvtuneError, match=r"bad\.png is not a readable image"):
        prepare_images([bad], 1, (8, 8))
    with pytest.raises(ConvtuneError, match=r"missing\.png not found"):
        prepare_images([tmp_path / "missing.png"], 1, (8, 8))


def test_predict_resizes_and_converts_rgb_images(tmp_path: Path) -> None:
    paths, images, _ = write_digit_pngs(tmp_path, 3)
    big = tmp_path / "big.jpg"
    Image.open(paths[0]).convert("RGB").resize((64, 48)).save(big, quality=95)
    prepared = prepare_images([paths[0], big], 1, (8, 8))
    assert prepared.dtype == torch.uint8 and prepared.shape == (2, 1, 8, 8)
    assert torch.equal(prepared[0], images[0])
    assert (prepared[1].int() - images[0].int()).abs().float().mean() < 40


def test_dataset_images_are_fitted_to_the_models_channels_and_size() -> None:
    gray = torch.full((2, 1, 4, 4), 100, dtype=torch.uint8)
    as_rgb = fit_images(gray, 3, (4, 4))
    assert as_rgb.shape == (2, 3, 4, 4) and as_rgb.is_contiguous() and as_rgb.unique().tolist() == [100]
    red = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 255
    assert fit_images(red, 1, (4, 4)).unique().tolist() == [76]  # 0.299 * 255, as PIL converts
    assert fit_images(gray, 1, (8, 6)).shape == (2, 1, 8, 6)
    with pytest.raises(ConfigError, match="the data has 2 channels but the model takes 3"):
        fit_images(torch.zeros(1, 2, 4, 4, dtype=torch.uint8), 3, (4, 4))
