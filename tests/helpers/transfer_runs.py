"""Transfer-learning runs on digits: a seeded convnet to take weights from, and a run config that
loads, freezes or scales them (shared by tests/e2e/test_lightning_transfer.py and the mirror tests of
`lightning_modules.module` and `lightning_modules.training`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_modules.config import RunConfig
from lightning_modules.models.registry import create_model


def seeded_convnet(num_classes: int = 10, **fields: Any) -> nn.Module:
    """A small convnet for 1x8x8 digits, the same weights every call: a stand-in pretrained model."""
    torch.manual_seed(1)
    return create_model(
        "convnet", in_channels=1, num_classes=num_classes, image_size=(8, 8), channels=[4, 8], **fields
    )


def transfer_config(**model: Any) -> RunConfig:
    """One short epoch on digits (lr 0.05) of the `seeded_convnet` architecture, with `model` fields."""
    return RunConfig.model_validate(
        {
            "seed": 0,
            "data": {"dataset": "digits", "val_fraction": 0.2, "batch_size": 64},
            "model": {"name": "convnet", "channels": [4, 8], **model},
            "optim": {"name": "adamw", "lr": 0.05, "weight_decay": 0.01},
            "trainer": {"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1},
        }
    )
