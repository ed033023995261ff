"""Built-in sources: digits, Fashion-MNIST and MNIST from IDX files, CIFAR; missing data in one line."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.data import sources
from lightning_modules.data.arrays import DatasetNotFoundError
from lightning_modules.data.sources import DATASET_NAMES, clear_cache, default_data_dir, load_dataset

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def test_digits_shapes_and_dtypes() -> None:
    arrays = load_dataset("digits")
    assert arrays.train_images.shape == (1438, 1, 8, 8) and arrays.test_images.shape == (359, 1, 8, 8)
    assert arrays.train_images.dtype == torch.uint8 and arrays.train_labels.dtype == torch.int64
    assert int(arrays.train_images.max()) == 255 and arrays.class_names == [str(i) for i in range(10)]
    assert load_dataset("digits") is arrays  # decoded once per process


@pytest.mark.skipif(not DEBIAN.is_dir(), reason=f"{DEBIAN} absent: install Debian's dataset-fashion-mnist")
def test_fashion_mnist_from_debian_files() -> None:
    arrays = load_dataset("fashion-mnist")
    assert arrays.train_images.shape == (60000, 1, 28, 28) and arrays.test_images.shape == (10000, 1, 28, 28)
    assert arrays.train_labels.shape == (60000,) and arrays.test_labels.dtype == torch.int64
    assert torch.bincount(arrays.test_labels).tolist() == [1000] * 10
    assert arrays.class_names[0] == "T-shirt/top" and load_dataset("fashion-mnist") is arrays


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_mnist_from_torchvision_layout_under_root(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte.gz", images)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", np.arange(12) % 10)
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", images[:4])
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(4))
    arrays = load_dataset("mnist", root=tmp_path)
    assert arrays.train_images.shape == (12, 1, 28, 28) and arrays.test_labels.tolist() == [0, 1, 2, 3]
    assert torch.equal(arrays.train_images[:, 0], torch.from_numpy(images))


def test_missing_dataset_is_one_line_naming_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("fashion-mnist", root=tmp_path / "nowhere")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("fashion-mnist not found in ")
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "no-debian") in message
    assert "dataset-fashion-mnist" in message and "data.download: true" in message
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(DatasetNotFoundError, match=r"^cifar10 not found in .*nowhere"):
        load_dataset("cifar10", root=tmp_path / "nowhere")


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; choose one of digits, fashion-mnist"):
        load_dataset("svhn")
    assert DATASET_NAMES == ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder")


def test_data_dir_and_clearing_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_data_dir() == tmp_path / "data-cache"  # $CONVTUNE_DATA (set for every data test)
    monkeypatch.delenv("CONVTUNE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "convtune" / "data"
    first = load_dataset("digits")
    clear_cache()
    again = load_dataset("digits")
    assert again is not first and torch.equal(again.train_images, first.train_images)
