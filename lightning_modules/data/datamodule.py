"""`ImageDataModule`: train/val/test splits of an in-memory dataset, as uint8 batches.

Batches are (uint8 images (N, C, H, W), int64 labels (N,)); the LightningModule normalizes them on
the device with `mean`/`std` from this module. The test split feeds `test_dataloader()` only.
The data handling lives in `lightning_modules.data.splits.ImageSplits` (no Lightning import); this
module adds Lightning's `LightningDataModule` to it.
"""

from __future__ import annotations

import pytorch_lightning as pl

from lightning_modules.data.splits import ImageSplits


class ImageDataModule(ImageSplits, pl.LightningDataModule):
    """Train, a seeded validation split carved from train, and test, all held as uint8 tensors.

    `augment` entries (`[{HorizontalFlip: {p: 0.5}}]`) are checked here, at construction; they apply
    to training batches only. `device` optionally holds the plain (unaugmented) loaders' tensors on
    that device, moved once.
    """
