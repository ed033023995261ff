"""Trials of a study share one prepared split: the second setup of the same data does no work."""

from __future__ import annotations

import torch

from lightning_modules.config import DataConfig
from lightning_modules.data import ImageDataModule


def _setup(**data: object) -> ImageDataModule:
    module = ImageDataModule(DataConfig(dataset="digits", **data))  # type: ignore[arg-type]
    module.setup()
    return module


def test_same_data_shares_the_split_and_statistics() -> None:
    first, second = _setup(val_fraction=0.2), _setup(val_fraction=0.2, batch_size=7, num_workers=0)
    assert second.val_images is first.val_images  # the loader-only fields do not re-split
    assert second.mean == first.mean and second.std == first.std
    assert second.sizes == first.sizes


def test_other_split_settings_prepare_their_own_split() -> None:
    base = _setup(val_fraction=0.2)
    other_fraction = _setup(val_fraction=0.3)
    assert other_fraction.sizes["val"] != base.sizes["val"]
    reseeded = ImageDataModule(DataConfig(dataset="digits", val_fraction=0.2), seed=1)
    reseeded.setup()
    assert not torch.equal(reseeded.val_labels, _setup(val_fraction=0.2).val_labels)


def test_clearing_the_setup_cache_prepares_the_split_again() -> None:
    from lightning_modules.data.datamodule import clear_setup_cache

    first = _setup(val_fraction=0.2)
    clear_setup_cache()
    again = _setup(val_fraction=0.2)
    assert again.val_images is not first.val_images
    assert torch.equal(again.val_images, first.val_images)  # the same seeded split, prepared anew
