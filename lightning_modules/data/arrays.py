"""A whole dataset in memory (`ImageArrays`), the errors a dataset can raise, and the seeded,
class-stratified split that carves validation and test sets out of train."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from lightning_modules.machine import available_memory

HOLDOUT_FRACTION = 0.2  # test share carved (seeded) where a source has no test split of its own
HOLDOUT_SEED = 0


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where convtune looked; the message says where it looked and how to get it."""


class DatasetError(ValueError):
    """A dataset or data setting that cannot be used (one class only, unreadable files, a split that
    selects nothing); the one-line message says what to change."""


@dataclass(frozen=True, eq=False)
class ImageArrays:
    """A whole dataset in memory: uint8 images (N, C, H, W) and int64 labels (N,).

    `val_images`/`val_labels` are set only when the source ships its own validation split
    (an image folder with `val/`); otherwise the validation split is carved from train.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    notes: tuple[str, ...] = ()  # what loading decided for the user (files skipped, a size picked)

    def __post_init__(self) -> None:
        _check_pair("train", self.train_images, self.train_labels)
        _check_pair("test", self.test_images, self.test_labels)
        if self.val_images is not None or self.val_labels is not None:
            _check_pair("val", self.val_images, self.val_labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])


def _check_pair(split: str, images: torch.Tensor | None, labels: torch.Tensor | None) -> None:
    if images is None or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{split} images must be a uint8 tensor (N, C, H, W); got {_describe(images)}.")
    if labels is None or labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{split} labels must be an int64 tensor ({images.shape[0]},); got {_describe(labels)}."
        )


def _describe(tensor: torch.Tensor | None) -> str:
    return "None" if tensor is None else f"{tensor.dtype} {tuple(tensor.shape)}"


def not_found(name: str, looked: Iterable[Path], how: str) -> DatasetNotFoundError:
    places = ", ".join(dict.fromkeys(str(p) for p in looked))
    return DatasetNotFoundError(f"{name} not found in {places}; {how}")


def check_memory(needed: int, what: str) -> None:
    """A `DatasetError` when `needed` bytes of images would not fit in the memory that is free now."""
    available = available_memory()
    if available is not None and needed > 0.8 * available:
        raise DatasetError(
            f"{what} need {needed / 2**30:.1f} GiB of memory, but {available / 2**30:.1f} GiB are free; "
            "lower data.image_size or use fewer images (data.train_fraction, data.classes)."
        )


def with_holdout(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], notes: tuple[str, ...] = ()
) -> ImageArrays:
    test, train = stratified_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
    return ImageArrays(images[train], labels[train], images[test], labels[test], class_names, notes=notes)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(taken, rest) index tensors: a seeded, class-stratified `fraction` of `labels` and the rest.

    Exactly round(fraction * N) indices are taken, shared among classes by largest remainder; both
    index tensors are sorted so that subsets keep the source order.
    """
    total = labels.numel()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=generator)
    shuffled = labels[order]
    by_class = order[torch.argsort(shuffled, stable=True)]  # grouped by class, shuffled within
    counts = torch.bincount(labels, minlength=int(labels.max()) + 1 if total else 0)
    quotas = _largest_remainder(counts, round(fraction * total))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(total) - starts.repeat_interleave(counts)
    take = rank < quotas.repeat_interleave(counts)
    return by_class[take].sort().values, by_class[~take].sort().values


def _largest_remainder(counts: torch.Tensor, target: int) -> torch.Tensor:
    total = int(counts.sum())
    if total == 0:
        return counts.clone()
    exact = counts.double() * (target / total)
    quotas = exact.floor().long()
    leftover = target - int(quotas.sum())
    if leftover > 0:
        quotas[torch.argsort(exact - quotas, descending=True, stable=True)[:leftover]] += 1
    return quotas
