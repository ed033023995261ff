"""Augmented batches depend on the seed and epoch only, never on the number of loader workers."""

from __future__ import annotations

import torch

from lightning_modules.augment import build_augmentation
from lightning_modules.data import load_dataset
from lightning_modules.data.loaders import build_augmented_loader


def _epoch_batches(workers: int, epoch: int, seed: int = 0) -> list[torch.Tensor]:
    arrays = load_dataset("digits")
    images, labels = arrays.train_images[:96], arrays.train_labels[:96]
    transform = build_augmentation([{"Affine": {"translate_percent": 0.2, "rotate": 20, "p": 1.0}}])
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
