"""Datasets decoded once into uint8 tensors, in-memory loaders, and the ImageDataModule.

`ImageDataModule` is imported lazily: loading a dataset does not pay for importing Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning_modules.data.arrays import DatasetError, DatasetNotFoundError, ImageArrays, stratified_split
from lightning_modules.data.loaders import (
    AugmentedDataset,
    InMemoryLoader,
    build_augmented_loader,
    resolve_num_workers,
)
from lightning_modules.data.sources import DATASET_NAMES, clear_cache, default_data_dir, load_dataset

if TYPE_CHECKING:
    from lightning_modules.data.datamodule import ImageDataModule

__all__ = [
    "DATASET_NAMES",
    "AugmentedDataset",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageArrays",
    "ImageDataModule",
    "InMemoryLoader",
    "build_augmented_loader",
    "clear_cache",
    "default_data_dir",
    "load_dataset",
    "resolve_num_workers",
    "stratified_split",
]


def __getattr__(name: str) -> Any:
    if name == "ImageDataModule":
        from lightning_modules.data.datamodule import ImageDataModule  # lazy: Lightning costs seconds

        return ImageDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
