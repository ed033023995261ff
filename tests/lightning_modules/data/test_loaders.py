"""Batch iterators: in-memory batches per seed and epoch, and augmented batches that depend on the
seed and epoch only, never on the number of loader workers."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.augment import build_augmentation
from lightning_modules.data import load_dataset
from lightning_modules.data.loaders import InMemoryLoader, build_augmented_loader, resolve_num_workers


def _orders(loader: InMemoryLoader) -> list[int]:
    return [int(i) for images, _ in loader for i in images[:, 0, 0, 1]]


def _numbered(count: int) -> torch.Tensor:
    """`count` 4x4 gray images, each with its index in its second pixel."""
    images = torch.zeros(count, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 1] = torch.arange(count).to(torch.uint8)
    return images


def test_in_memory_loader_is_deterministic_per_seed_and_epoch() -> None:
    ids = torch.arange(200)
    images, labels = _numbered(200), ids % 3

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


def test_num_workers_auto_and_explicit() -> None:
    assert 0 <= resolve_num_workers("auto") <= 4
    assert resolve_num_workers(3) == 3
    with pytest.raises(ValueError, match="num_workers must be"):
        resolve_num_workers(-1)


def _epoch_batches(workers: int, epoch: int, seed: int = 0) -> list[torch.Tensor]:
    arrays = load_dataset("digits")
    images, labels = arrays.train_images[:96], arrays.train_labels[:96]
    shift_and_turn = {"translate_percent": [-0.2, 0.2], "rotate": [-20, 20], "p": 1.0}
    transform = build_augmentation([{"Affine": shift_and_turn}])
    loader = build_augmented_loader(images, labels, transform, 32, seed=seed, num_workers=workers)
    loader.sampler.set_epoch(epoch)
    return [batch for batch, _ in loader]


def test_same_batches_with_zero_or_two_workers() -> None:
    single = _epoch_batches(0, epoch=1)
    multi = _epoch_batches(2, epoch=1)
    assert all(torch.equal(a, b) for a, b in zip(single, multi, strict=True))


def test_epochs_and_seeds_augment_differently() -> None:
    first = torch.cat(_epoch_batches(0, epoch=0))
    assert not torch.equal(first, torch.cat(_epoch_batches(0, epoch=1)))
    assert not torch.equal(first, torch.cat(_epoch_batches(0, epoch=0, seed=1)))
    assert torch.equal(first, torch.cat(_epoch_batches(0, epoch=0)))


def test_in_memory_loader_moves_to_a_device_at_the_same_epoch() -> None:
    images, labels = _numbered(10), torch.arange(10)
    loader = InMemoryLoader(images, labels, 4, shuffle=True, seed=5)
    loader.set_epoch(3)
    moved = loader.to("cpu")
    assert moved.device == torch.device("cpu") and len(moved) == 3
    assert _orders(moved) == _orders(loader)  # the same epoch's order
    with pytest.raises(ValueError, match=r"images must be a uint8 tensor \(N, C, H, W\)"):
        InMemoryLoader(images.float(), labels, 4)
