"""Image folders as users have them: broken, odd-mode, rotated, mixed-size files; one class only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.config import DataConfig
from lightning_modules.data import DatasetError, load_dataset
from lightning_modules.data.datamodule import ImageDataModule
from tests.conftest import write_experiment
from tests.helpers.cli_helpers import run_cli


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVTUNE_DATA", str(tmp_path / "data-cache"))


def _gray(folder: Path, count: int, size: tuple[int, int] = (6, 6), value: int = 0, start: int = 0) -> None:
    """`count` gray PNGs of `size` (width, height) in `folder`, pixel values `value + index`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        pixels = np.full((size[1], size[0]), value + index, dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:03d}.png")


def _two_classes(root: Path, count: int = 5) -> None:
    _gray(root / "a", count, value=10)
    _gray(root / "b", count, value=100)


def _broken_files(folder: Path) -> list[Path]:
    """A zero-byte file, one that is no image, and a PNG cut in half; sorted as the loader sees them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "900-empty.png").write_bytes(b"")
    (folder / "901-garbage.png").write_bytes(b"\x89PNG but not really" * 10)
    whole = folder / "902-whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(whole)
    data = whole.read_bytes()
    truncated = folder / "902-truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return [folder / "900-empty.png", folder / "901-garbage.png", truncated]


def _imagefolder_config(root: Path) -> dict:
    return {
        "name": "folder",
        "data": {
            "dataset": "imagefolder",
            "root": str(root),
            "val_fraction": 0.25,
            "batch_size": 4,
        },
        "model": {"name": "convnet", "channels": [4], "kernel_size": 3},
        "trainer": {"max_epochs": 1},
        "search": {"n_trials": 1, "space": {}},
    }


def test_broken_files_are_skipped_with_a_count_and_the_first_named(tmp_path: Path) -> None:
    _two_classes(tmp_path)
    broken = _broken_files(tmp_path / "b")
    arrays = load_dataset("imagefolder", root=tmp_path)
    assert arrays.train_images.shape[0] + arrays.test_images.shape[0] == 10
    (note,) = arrays.notes
    assert note.startswith("skipped 3 of 13 images that cannot be read") and str(broken[0]) in note
    assert "data.bad_images: stop" in note


def test_broken_files_stop_the_run_when_asked(tmp_path: Path) -> None:
    _two_classes(tmp_path)
    broken = _broken_files(tmp_path / "a")
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagefolder", root=tmp_path, bad_images="stop")
    message = str(caught.value)
    assert "\n" not in message and "3 of 13 images cannot be read" in message
    assert str(broken[0]) in message and "data.bad_images: skip" in message


def test_every_file_broken_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    _broken_files(tmp_path / "a")
    _broken_files(tmp_path / "b")
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
    _gray(tmp_path / "a", 4, size=(6, 5))
    _gray(tmp_path / "b", 3, size=(6, 5))
    _gray(tmp_path / "b", 2, size=(9, 7), start=50)
    arrays = load_dataset("imagefolder", root=tmp_path)
    assert arrays.image_size == (5, 6)
    (note,) = arrays.notes
    assert "2 sizes" in note and "resized all to 6x5 (width x height), the most common" in note
    assert "data.image_size" in note
    fixed = load_dataset("imagefolder", root=tmp_path, image_size=4)
    assert fixed.image_size == (4, 4) and not fixed.notes


def test_mixed_sizes_across_split_folders_resize_too(tmp_path: Path) -> None:
    _gray(tmp_path / "train" / "a", 4, size=(10, 10))
    _gray(tmp_path / "train" / "b", 4, size=(10, 10))
    _gray(tmp_path / "test" / "a", 1, size=(12, 12))
    _gray(tmp_path / "test" / "b", 3, size=(12, 12))
    arrays = load_dataset("imagefolder", root=tmp_path)
    assert arrays.image_size == (10, 10) and arrays.test_images.shape == (4, 1, 10, 10)
    assert "resized all to 10x10" in arrays.notes[0]


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_a_single_class_is_an_error(tmp_path: Path, layout: str) -> None:
    _gray(tmp_path / ("train/only" if layout == "split" else "only"), 6)
    with pytest.raises(DatasetError, match=r"1 class \('only'\).*at least 2") as caught:
        load_dataset("imagefolder", root=tmp_path)
    assert "\n" not in str(caught.value)


def test_datamodule_passes_the_notes_on(tmp_path: Path) -> None:
    _two_classes(tmp_path)
    _broken_files(tmp_path / "a")
    module = ImageDataModule(DataConfig(dataset="imagefolder", root=str(tmp_path), val_fraction=0.25))
    module.setup()
    assert len(module.notes) == 1 and "skipped 3" in module.notes[0]


def test_bad_images_setting_is_validated() -> None:
    assert DataConfig().bad_images == "skip"
    with pytest.raises(ValueError, match="bad_images"):
        DataConfig(bad_images="ignore")  # type: ignore[arg-type]


def test_check_prints_the_note_and_stop_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = workdir / "images"
    _two_classes(root, count=6)
    broken = _broken_files(root / "b")
    path = write_experiment(workdir, _imagefolder_config(root))
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 0, result.err
    assert "skipped 3 of 15 images" in result.out and str(broken[0]) in result.out.replace("\n", "")
    result = run_cli(["check", str(path), "--set", "data.bad_images=stop"], capsys)
    assert result.code == 2
    assert "cannot be read" in result.one_line_error()


def test_check_on_a_single_class_folder_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _gray(workdir / "images" / "only", 6)
    path = write_experiment(workdir, _imagefolder_config(workdir / "images"))
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 2
    assert "at least 2" in result.one_line_error()


def test_check_on_mixed_sizes_is_valid_and_prints_the_size(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _gray(workdir / "images" / "a", 5, size=(6, 6))
    _gray(workdir / "images" / "b", 4, size=(6, 6))
    _gray(workdir / "images" / "b", 1, size=(7, 9), start=20)
    path = write_experiment(workdir, _imagefolder_config(workdir / "images"))
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 0, result.err
    assert "resized all to 6x6" in result.out and "Traceback" not in result.err
