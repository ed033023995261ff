"""Datasets, splits and loaders: shapes, seeds, disjoint splits, and one-line errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.augment import AugmentationError
from lightning_modules.config import DataConfig
from lightning_modules.data import (
    DatasetNotFoundError,
    ImageArrays,
    ImageDataModule,
    InMemoryLoader,
    build_augmented_loader,
    load_dataset,
    resolve_num_workers,
    sources,
    stratified_split,
)
from lightning_modules.data import splits as splits_module

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FLIP = [{"HorizontalFlip": {"p": 0.5}}]


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVTUNE_DATA", str(tmp_path / "data-cache"))


# ---------------------------------------------------------------------------------------------------
# sources


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


def _write_pngs(folder: Path, classes: dict[str, int], size: tuple[int, int], mode: str = "L") -> None:
    rng = np.random.default_rng(len(classes))
    for name, count in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / name / f"{index}.png")


def test_imagefolder_class_subfolders(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "flat", {"cat": 5, "dog": 5, "emu": 5}, (6, 5))
    arrays = load_dataset("imagefolder", root=tmp_path / "flat")
    assert arrays.class_names == ["cat", "dog", "emu"] and arrays.in_channels == 1
    assert arrays.train_images.shape == (12, 1, 5, 6) and arrays.test_images.shape[0] == 3  # seeded holdout
    assert sorted(arrays.test_labels.tolist()) == [0, 1, 2]


def test_imagefolder_split_folders_rgb_and_resize(tmp_path: Path) -> None:
    root = tmp_path / "split"
    _write_pngs(root / "train", {"a": 6, "b": 6}, (10, 10), mode="RGB")
    _write_pngs(root / "val", {"a": 2, "b": 2}, (10, 10), mode="RGB")
    _write_pngs(root / "test", {"a": 1, "b": 3}, (12, 12), mode="RGB")
    mixed = load_dataset("imagefolder", root=root)  # the most common size, said in a note
    assert mixed.test_images.shape == (4, 3, 10, 10) and "resized all to 10x10" in mixed.notes[0]
    arrays = load_dataset("imagefolder", root=root, image_size=8)
    assert arrays.train_images.shape == (12, 3, 8, 8) and arrays.test_labels.tolist() == [0, 1, 1, 1]
    assert arrays.val_images is not None and arrays.val_images.shape == (4, 3, 8, 8)
    module = ImageDataModule(DataConfig(dataset="imagefolder", root=str(root), image_size=8))
    module.setup()
    assert module.sizes == {"train": 12, "val": 4, "test": 4} and module.in_channels == 3  # given val/ used


def test_stratified_split_exact_count_and_proportions() -> None:
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    taken, rest = stratified_split(labels, 0.2, seed=3)
    assert len(taken) == 20 and len(rest) == 80
    assert torch.bincount(labels[taken]).tolist() == [12, 6, 2]
    assert sorted(torch.cat([taken, rest]).tolist()) == list(range(100))
    assert torch.equal(taken, stratified_split(labels, 0.2, seed=3)[0])


# ---------------------------------------------------------------------------------------------------
# ImageDataModule on a synthetic dataset whose pixels encode each image's id


def _id_images(ids: torch.Tensor) -> torch.Tensor:
    images = torch.zeros(len(ids), 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = (ids // 256).to(torch.uint8)
    images[:, 0, 0, 1] = (ids % 256).to(torch.uint8)
    return images


def _ids(images: torch.Tensor) -> set[int]:
    return set((images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()).tolist())


@pytest.fixture
def synthetic(monkeypatch: pytest.MonkeyPatch) -> ImageArrays:
    train_ids, test_ids = torch.arange(1000), torch.arange(1000, 1200)
    arrays = ImageArrays(
        _id_images(train_ids), train_ids % 5, _id_images(test_ids), test_ids % 5, list("abcde")
    )
    monkeypatch.setattr(splits_module, "load_dataset", lambda *args: arrays)  # ImageSplits.setup reads it
    return arrays


def _module(seed: int = 0, augment: list | tuple = (), **data: object) -> ImageDataModule:
    module = ImageDataModule(
        DataConfig(**{"val_fraction": 0.2, "batch_size": 64, **data}), augment, seed=seed
    )
    module.setup()
    return module


def test_split_sizes_disjoint_and_test_kept_apart(synthetic: ImageArrays) -> None:
    module = _module()
    assert module.sizes == {"train": 800, "val": 200, "test": 200}
    train, val = _ids(module.train_images), _ids(module.val_images)
    assert not train & val and train | val == set(range(1000))
    test = set()
    for images, labels in module.test_dataloader():
        test |= _ids(images)
        assert labels.dtype == torch.int64
    assert test == set(range(1000, 1200))
    seen = set()
    for images, _ in module.train_dataloader():
        seen |= _ids(images)
    assert seen == train
    assert torch.bincount(module.val_labels).tolist() == [40] * 5


def test_seeded_split_is_deterministic(synthetic: ImageArrays) -> None:
    first, again, other = _module(seed=0), _module(seed=0), _module(seed=1)
    assert torch.equal(first.val_images, again.val_images) and torch.equal(first.val_labels, again.val_labels)
    assert _ids(first.val_images) != _ids(other.val_images)


def test_train_fraction_keeps_stratified_subset_of_train_only(synthetic: ImageArrays) -> None:
    full, few = _module(), _module(train_fraction=0.1)
    assert few.sizes == {"train": 80, "val": 200, "test": 200}
    assert torch.bincount(few.train_labels).tolist() == [16] * 5
    assert _ids(few.train_images) <= _ids(full.train_images) and torch.equal(few.val_images, full.val_images)


def test_classes_keeps_and_relabels(synthetic: ImageArrays) -> None:
    module = _module(classes=[3, 1])
    assert module.class_names == ["d", "b"] and module.num_classes == 2
    assert module.sizes == {"train": 320, "val": 80, "test": 80}
    assert {i % 5 for i in _ids(module.train_images)} == {1, 3}
    kept = module.train_images[module.train_labels == 0]
    assert {i % 5 for i in _ids(kept)} == {3}
    with pytest.raises(ValueError, match=r"data.classes has ids \[7\]"):
        _module(classes=[1, 7])


def test_setup_is_idempotent_and_properties_need_it(synthetic: ImageArrays) -> None:
    module = ImageDataModule(DataConfig(batch_size=32))
    with pytest.raises(RuntimeError, match="setup"):
        _ = module.num_classes
    module.setup("fit")
    train = module.train_images
    module.setup("test")
    assert module.train_images is train
    assert module.eval_batch_size == 64 and module.in_channels == 1 and module.image_size == (4, 4)


def test_digits_stats_resize_and_batches() -> None:
    module = ImageDataModule(DataConfig(dataset="digits", image_size=16, batch_size=100, eval_batch_size=500))
    module.setup()
    assert module.image_size == (16, 16) and module.train_images.dtype == torch.uint8
    expected = module.train_images.double() / 255
    assert module.mean == pytest.approx([expected.mean().item()])
    assert module.std == pytest.approx([expected.std(unbiased=False).item()])
    images, labels = next(iter(module.val_dataloader()))
    assert images.shape == (144, 1, 16, 16) and images.dtype == torch.uint8 and labels.dtype == torch.int64


# ---------------------------------------------------------------------------------------------------
# loaders


def _orders(loader: InMemoryLoader) -> list[int]:
    return [int(i) for images, _ in loader for i in images[:, 0, 0, 1]]


def test_in_memory_loader_is_deterministic_per_seed_and_epoch() -> None:
    ids = torch.arange(200)
    images, labels = _id_images(ids), ids % 3

    def loader(seed: int) -> InMemoryLoader:
        return InMemoryLoader(images, labels, 32, shuffle=True, drop_last=True, seed=seed)

    a, b = loader(0), loader(0)
    epoch0, epoch1 = _orders(a), _orders(a)
    assert epoch0 == _orders(b) and epoch1 == _orders(b) and epoch0 != epoch1
    a.set_epoch(0)
    assert _orders(a) == epoch0 and _orders(loader(1)) != epoch0
    assert len(a) == 6 and len(epoch0) == 192 and len(set(epoch0)) == 192
    plain = InMemoryLoader(images, labels, 64)
    assert len(plain) == 4 and [len(y) for _, y in plain] == [64, 64, 64, 8]
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        InMemoryLoader(images, labels, 0)


def test_augmented_loader_batches_and_seeds() -> None:
    arrays = load_dataset("digits")
    module = _module(augment=[*FLIP, {"Affine": {"translate_percent": 0.1, "p": 0.5}}], num_workers=0)
    loader = module.train_dataloader()
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 8, 8) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    first, again, other = (
        next(iter(_module(seed, FLIP, num_workers=0).train_dataloader()))[0] for seed in (0, 0, 1)
    )
    assert torch.equal(first, again) and not torch.equal(first, other)

    def worker_batch(seed: int) -> torch.Tensor:
        source = arrays.train_images[:64], arrays.train_labels[:64]
        loader = build_augmented_loader(
            *source, module.transform, 64, shuffle=False, seed=seed, num_workers=1
        )
        return next(iter(loader))[0]

    first, again, other = worker_batch(0), worker_batch(0), worker_batch(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first, arrays.train_images[:64])  # augmented


def test_augmentation_checked_early() -> None:
    with pytest.raises(AugmentationError, match="HorizontalFlip"):
        ImageDataModule(DataConfig(), [{"HorizontalFlp": {}}])
    module = ImageDataModule(DataConfig(), [{"RandomCrop": {"height": 4, "width": 4, "p": 1.0}}])
    with pytest.raises(ValueError, match="keep the image size"):
        module.setup()


def test_num_workers_auto_and_explicit() -> None:
    assert 0 <= resolve_num_workers("auto") <= 4
    assert resolve_num_workers(3) == 3
    with pytest.raises(ValueError, match="num_workers must be"):
        resolve_num_workers(-1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_in_memory_loader_on_device_cuts_batches_there() -> None:
    module = ImageDataModule(DataConfig(dataset="digits"), device="cuda")
    module.setup()
    images, labels = next(iter(module.train_dataloader()))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.uint8
    assert next(iter(module.val_dataloader()))[0].is_cuda
