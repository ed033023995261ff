"""Image folders as users have them: class or split subfolders, RGB or gray, broken, odd-mode,
rotated and mixed-size files, one class only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.config import DataConfig
from lightning_modules.data import DatasetError, load_dataset
from lightning_modules.data.datamodule import ImageDataModule
from tests.lightning_modules.data.image_files import broken_files, gray_pngs, two_classes, write_pngs


def test_imagefolder_class_subfolders(tmp_path: Path) -> None:
    write_pngs(tmp_path / "flat", {"cat": 5, "dog": 5, "emu": 5}, (6, 5))
    arrays = load_dataset("imagefolder", root=tmp_path / "flat")
    assert arrays.class_names == ["cat", "dog", "emu"] and arrays.in_channels == 1
    assert arrays.train_images.shape == (12, 1, 5, 6) and arrays.test_images.shape[0] == 3  # seeded holdout
    assert sorted(arrays.test_labels.tolist()) == [0, 1, 2]


def test_imagefolder_split_folders_rgb_and_resize(tmp_path: Path) -> None:
    root = tmp_path / "split"
    write_pngs(root / "train", {"a": 6, "b": 6}, (10, 10), mode="RGB")
    write_pngs(root / "val", {"a": 2, "b": 2}, (10, 10), mode="RGB")
    write_pngs(root / "test", {"a": 1, "b": 3}, (12, 12), mode="RGB")
    mixed = load_dataset("imagefolder", root=root)  # the most common size, said in a note
    assert mixed.test_images.shape == (4, 3, 10, 10) and "resized all to 10x10" in mixed.notes[0]
    arrays = load_dataset("imagefolder", root=root, image_size=8)
    assert arrays.train_images.shape == (12, 3, 8, 8) and arrays.test_labels.tolist() == [0, 1, 1, 1]
    assert arrays.val_images is not None and arrays.val_images.shape == (4, 3, 8, 8)
    module = ImageDataModule(DataConfig(dataset="imagefolder", root=str(root), image_size=8))
    module.setup()
    assert module.sizes == {"train": 12, "val": 4, "test": 4} and module.in_channels == 3  # given val/ used


def test_broken_files_are_skipped_with_a_count_and_the_first_named(tmp_path: Path) -> None:
    two_classes(tmp_path)
    broken = broken_files(tmp_path / "b")
    arrays = load_dataset("imagefolder", root=tmp_path)
    assert arrays.train_images.shape[0] + arrays.test_images.shape[0] == 10
    (note,) = arrays.notes
    assert note.startswith("skipped 3 of 13 images that cannot be read") and str(broken[0]) in note
    assert "data.bad_images: stop" in note


def test_broken_files_stop_the_run_when_asked(tmp_path: Path) -> None:
    two_classes(tmp_path)
    broken = broken_files(tmp_path / "a")
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagefolder", root=tmp_path, bad_images="stop")
    message = str(caught.value)
    assert "\n" not in message and "3 of 13 images cannot be read" in message
    assert str(broken[0]) in message and "data.bad_images: skip" in message


def test_every_file_broken_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    broken_files(tmp_path / "a")
    broken_files(tmp_path / "b")
    with pytest.raises(DatasetError, match="none of the 6 images"):
        load_dataset("imagefolder", root=tmp_path)


def test_sixteen_bit_palette_cmyk_and_exif_rotated_files_are_read_correctly(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb"
    (rgb / "palette").mkdir(parents=True)
    palette = Image.new("P", (6, 6), 1)
    palette.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    palette.save(rgb / "palette" / "p.png")
    (rgb / "cmyk").mkdir()
    Image.new("CMYK", (6, 6), (0, 255, 255, 0)).save(rgb / "cmyk" / "c.jpg", quality=100)
    arrays = load_dataset("imagefolder", root=rgb, image_size=None)
    images = torch.cat([arrays.train_images, arrays.test_images])
    labels = torch.cat([arrays.train_labels, arrays.test_labels])
    assert arrays.in_channels == 3 and not arrays.notes
    assert images[labels == 1][0][:, 0, 0].tolist() == [200, 10, 30]  # the palette's colour, not its index
    red = images[labels == 0][0][:, 0, 0].tolist()
    assert red[0] > 240 and red[1] < 15 and red[2] < 15  # CMYK converted, not reinterpreted

    gray = tmp_path / "gray"
    (gray / "deep").mkdir(parents=True)
    Image.fromarray(np.full((8, 4), 65535, dtype=np.uint16)).save(gray / "deep" / "white.png")
    Image.fromarray(np.full((8, 4), 32896, dtype=np.uint16)).save(gray / "deep" / "mid.png")
    (gray / "rotated").mkdir()
    upright = np.zeros((4, 8), dtype=np.uint8)  # stored 8 wide, 4 high; EXIF says: turn it upright
    upright[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(upright, mode="L").save(gray / "rotated" / "r.png", exif=exif)
    arrays = load_dataset("imagefolder", root=gray)
    images = torch.cat([arrays.train_images, arrays.test_images])
    labels = torch.cat([arrays.train_labels, arrays.test_labels])
    assert arrays.in_channels == 1 and arrays.image_size == (8, 4) and not arrays.notes  # all 4 wide, 8 high
    assert sorted(images[labels == 0][:, 0, 0, 0].tolist()) == [128, 255]  # 16-bit scaled, not clipped
    rotated = images[labels == 1][0, 0]
    assert rotated[0, -1] == 255 and int(rotated.sum()) == 255  # top-left pixel turned to top-right


def test_mixed_sizes_resize_to_the_most_common_and_say_so(tmp_path: Path) -> None:
    gray_pngs(tmp_path / "a", 4, size=(6, 5))
    gray_pngs(tmp_path / "b", 3, size=(6, 5))
    gray_pngs(tmp_path / "b", 2, size=(9, 7), start=50)
    arrays = load_dataset("imagefolder", root=tmp_path)
    assert arrays.image_size == (5, 6)
    (note,) = arrays.notes
    assert "2 sizes" in note and "resized all to 6x5 (width x height), the most common" in note
    assert "data.image_size" in note
    fixed = load_dataset("imagefolder", root=tmp_path, image_size=4)
    assert fixed.image_size == (4, 4) and not fixed.notes


def test_mixed_sizes_across_split_folders_resize_too(tmp_path: Path) -> None:
    gray_pngs(tmp_path / "train" / "a", 4, size=(10, 10))
    gray_pngs(tmp_path / "train" / "b", 4, size=(10, 10))
    gray_pngs(tmp_path / "test" / "a", 1, size=(12, 12))
    gray_pngs(tmp_path / "test" / "b", 3, size=(12, 12))
    arrays = load_dataset("imagefolder", root=tmp_path)
    assert arrays.image_size == (10, 10) and arrays.test_images.shape == (4, 1, 10, 10)
    assert "resized all to 10x10" in arrays.notes[0]


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_a_single_class_is_an_error(tmp_path: Path, layout: str) -> None:
    gray_pngs(tmp_path / ("train/only" if layout == "split" else "only"), 6)
    with pytest.raises(DatasetError, match=r"1 class \('only'\).*at least 2") as caught:
        load_dataset("imagefolder", root=tmp_path)
    assert "\n" not in str(caught.value)


def test_datamodule_passes_the_notes_on(tmp_path: Path) -> None:
    two_classes(tmp_path)
    broken_files(tmp_path / "a")
    module = ImageDataModule(DataConfig(dataset="imagefolder", root=str(tmp_path), val_fraction=0.25))
    module.setup()
    assert len(module.notes) == 1 and "skipped 3" in module.notes[0]
