"""`ImageDataModule`: `ImageSplits` as a LightningDataModule, its loaders optionally on the GPU."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_modules.config import DataConfig
from lightning_modules.data.datamodule import ImageDataModule
from lightning_modules.data.splits import ImageSplits


def test_the_datamodule_is_the_splits_for_lightning() -> None:
    module = ImageDataModule(DataConfig(dataset="digits", batch_size=50))
    assert isinstance(module, pl.LightningDataModule) and isinstance(module, ImageSplits)
    module.setup("fit")
    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (50, 1, 8, 8) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert sum(len(y) for _, y in module.test_dataloader()) == module.sizes["test"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_in_memory_loader_on_device_cuts_batches_there() -> None:
    module = ImageDataModule(DataConfig(dataset="digits"), device="cuda")
    module.setup()
    images, labels = next(iter(module.train_dataloader()))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.uint8
    assert next(iter(module.val_dataloader()))[0].is_cuda
