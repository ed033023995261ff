"""`ImageArrays` checks its tensors; the seeded stratified split; memory and not-found errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_modules.data import arrays
from lightning_modules.data.arrays import ImageArrays, stratified_split, with_holdout


def test_stratified_split_exact_count_and_proportions() -> None:
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    taken, rest = stratified_split(labels, 0.2, seed=3)
    assert len(taken) == 20 and len(rest) == 80
    assert torch.bincount(labels[taken]).tolist() == [12, 6, 2]
    assert sorted(torch.cat([taken, rest]).tolist()) == list(range(100))
    assert torch.equal(taken, stratified_split(labels, 0.2, seed=3)[0])


def test_image_arrays_refuse_tensors_of_the_wrong_kind() -> None:
    images, labels = torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.arange(4)
    arrays = ImageArrays(images, labels, images[:2], labels[:2], ["a", "b", "c", "d"])
    assert (arrays.num_classes, arrays.in_channels, arrays.image_size) == (4, 1, (8, 8))
    with pytest.raises(ValueError, match=r"^train images must be a uint8 tensor \(N, C, H, W\); got"):
        ImageArrays(images.float(), labels, images, labels, ["a"])
    with pytest.raises(ValueError, match=r"test labels must be an int64 tensor \(4,\)"):
        ImageArrays(images, labels, images, labels[:3], ["a"])


def test_with_holdout_carves_a_seeded_stratified_test_split() -> None:
    labels = torch.arange(100) % 4
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    arrays = with_holdout(images, labels, list("abcd"), notes=("a note",))
    assert arrays.test_labels.bincount().tolist() == [5] * 4 and arrays.train_labels.numel() == 80
    assert arrays.notes == ("a note",)
    assert torch.equal(arrays.test_images, with_holdout(images, labels, list("abcd")).test_images)


def test_memory_and_not_found_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrays, "available_memory", lambda: 2**30)
    arrays.check_memory(2**29, "half of it")  # fits in 80% of the free memory
    with pytest.raises(arrays.DatasetError, match=r"9 images need 1\.0 GiB of memory, but 1\.0 GiB are free"):
        arrays.check_memory(2**30, "9 images")
    error = arrays.not_found("cifar10", [Path("/a"), Path("/b"), Path("/a")], "set data.root.")
    assert isinstance(error, arrays.DatasetNotFoundError) and isinstance(error, FileNotFoundError)
    assert str(error) == "cifar10 not found in /a, /b; set data.root."
