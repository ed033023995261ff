"""Batch iterators over in-memory uint8 tensors, plain or augmented.

`InMemoryLoader` slices batches straight out of tensors (optionally already on the device): no
workers, no collation, no per-sample Python. The augmented path runs an albumentations pipeline per
sample in DataLoader workers, seeded so that a seeded run is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_modules.machine import available_cpus

__all__ = [
    "AugmentedDataset",
    "EpochIndexSampler",
    "EpochSampler",
    "InMemoryLoader",
    "build_augmented_loader",
    "resolve_num_workers",
]

Batch = tuple[torch.Tensor, torch.Tensor]
BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _check_images_labels(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Labels are class ids (N,), or class probabilities (N, C) as a float tensor (soft targets)."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be a uint8 tensor (N, C, H, W); got {images.dtype} {tuple(images.shape)}."
        )
    soft = labels.ndim == 2 and labels.is_floating_point()
    if not (labels.ndim == 1 or soft) or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), or ({images.shape[0]}, classes) as class "
            f"probabilities, to match images; got {tuple(labels.shape)}."
        )


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, but got batch_size={batch_size!r}.")


class EpochSampler:
    """The shuffle order of one epoch: a permutation from a generator seeded with `seed + epoch`.

    Lightning calls `set_epoch` (it looks for `loader.sampler.set_epoch`) before every epoch; without
    it, each new iteration moves on to the next epoch by itself.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def next_order(self, size: int) -> torch.Tensor:
        """The permutation of range(size) for the current epoch; advances to the next epoch."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        return torch.randperm(size, generator=generator)


class InMemoryLoader:
    """Iterates (uint8 images, labels) batches sliced from tensors held in memory: int64 class ids, or
    float class probabilities (soft targets, see `lightning_modules.distillation`).

    With `device` the tensors are moved there once, and every batch is cut on the device. With
    `augment` (a `lightning_modules.batch_augment.BatchAugmentation`) every batch is augmented where
    it lies, from a generator seeded by (seed, epoch): an epoch's batches do not depend on anything
    but those two, so a resumed or repeated epoch is augmented the same way.
    """

    batch_sampler = None  # Lightning inspects `batch_sampler` next to `sampler`

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        augment: BatchTransform | None = None,
    ) -> None:
        _check_images_labels(images, labels)
        _check_batch_size(batch_size)
        self.images = images if device is None else images.to(device)
        self.labels = labels if device is None else labels.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.sampler = EpochSampler(seed)

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def to(self, device: torch.device | str) -> InMemoryLoader:
        """A loader over the same data held on `device` (moved once), at the same epoch."""
        moved = InMemoryLoader(
            self.images,
            self.labels,
            self.batch_size,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self.sampler.seed,
            device=device,
            augment=self.augment,
        )
        moved.set_epoch(self.sampler.epoch)
        return moved

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        # a generator: Lightning calls iter() once to check the loader, which must not use up an epoch
        generator = self._augment_generator()
        for images, labels in self._batches():
            yield (images if self.augment is None else self.augment(images, generator)), labels

    def _augment_generator(self) -> torch.Generator:
        # the epoch about to be iterated (a shuffled iteration advances the sampler's epoch)
        return torch.Generator().manual_seed((self.sampler.seed * 1_000_003 + self.sampler.epoch) % 2**63)

    def _batches(self) -> Iterator[Batch]:
        if self.shuffle:
            order = self.sampler.next_order(self.num_samples).to(self.device)
            for start in range(0, len(self) * self.batch_size, self.batch_size):
                index = order[start : start + self.batch_size]
                yield self.images.index_select(0, index), self.labels.index_select(0, index)
        else:
            for start in range(0, len(self) * self.batch_size, self.batch_size):
                end = start + self.batch_size
                yield self.images[start:end], self.labels[start:end]


class EpochIndexSampler(Sampler[int]):
    """Yields `epoch * n + index` in a seeded per-epoch order, so a sample knows its epoch too.

    Lightning calls `set_epoch` before each epoch; without it, each iteration advances by itself.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0) -> None:
        self.size = int(size)
        self.shuffle = shuffle
        self.order = EpochSampler(seed)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        epoch = self.order.epoch
        order = self.order.next_order(self.size) if self.shuffle else torch.arange(self.size)
        self.order.epoch = epoch + 1
        return iter((order + epoch * self.size).tolist())


class AugmentedDataset(Dataset[Batch]):
    """Applies an albumentations pipeline per sample: HWC uint8 numpy in, CHW uint8 tensor out.

    Keys are `epoch * n + index` (see `EpochIndexSampler`). The pipeline is reseeded once per batch
    from (seed, the batch's first key), so a batch is augmented the same way whichever DataLoader
    worker, or how many workers, process it: a seeded run is reproducible.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any, seed: int = 0) -> None:
        _check_images_labels(images, labels)
        if not callable(transform):
            raise ValueError(
                f"transform must be an albumentations Compose, but got {type(transform).__name__}."
            )
        self.images = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        self.labels = labels.cpu()
        self.transform = transform
        self.shape = tuple(images.shape[1:])
        self.seed = int(seed)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        set_seed = getattr(self.transform, "set_random_seed", None)
        if callable(set_seed):
            set_seed(seed % 2**32)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitems__(self, keys: list[int]) -> list[Batch]:
        if keys:
            self.reseed(self.seed * 1_000_003 + keys[0])
        return [self[key] for key in keys]

    def __getitem__(self, key: int) -> Batch:
        index = key % len(self)
        out = self.transform(image=self.images[index])["image"]
        if out.ndim == 2:  # some OpenCV paths drop a single channel
            out = out[:, :, None]
        image = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)
        if image.shape != self.shape or image.dtype != torch.uint8:
            raise ValueError(
                f"augment turned a {self.shape} uint8 image into {tuple(image.shape)} {image.dtype}; "
                "use transforms that keep the image size and dtype (resize with data.image_size)."
            )
        return image, self.labels[index]


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: seed numpy and random from the worker's torch seed; one OpenCV thread."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    try:
        import cv2  # lazy: OpenCV only in the workers of an augmenting loader

        cv2.setNumThreads(1)  # one thread per worker: the workers already share the cores
    except ImportError:  # pragma: no cover - albumentations always brings OpenCV
        pass


def resolve_num_workers(num_workers: int | Literal["auto"]) -> int:
    """`auto` -> max(0, min(4, CPUs - 1)), counting the CPUs this process may use, at most as many as
    torch's threads; an int is checked and returned."""
    if num_workers == "auto":
        return max(0, min(4, min(available_cpus(), torch.get_num_threads()) - 1))
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(
            f"num_workers must be 'auto' or an integer >= 0, but got num_workers={num_workers!r}."
        )
    return num_workers


def build_augmented_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    transform: Any,
    batch_size: int,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int = 0,
    num_workers: int | Literal["auto"] = "auto",
) -> DataLoader[Batch]:
    """A DataLoader that augments each sample; reproducible for a given seed, whatever the worker count."""
    _check_batch_size(batch_size)
    workers = resolve_num_workers(num_workers)
    dataset = AugmentedDataset(images, labels, transform, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochIndexSampler(len(dataset), shuffle=shuffle, seed=seed),
        drop_last=drop_last,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )
