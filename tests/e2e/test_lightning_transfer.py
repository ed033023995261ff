"""Transfer learning end to end in `lightning_modules`: weights and freezing through a real
`Trainer.fit`, unfreezing after N epochs, frozen batch norm kept in eval mode. (The backbone's own
learning rate: tests/lightning_modules/test_module.py; weights URIs handed to the resolver:
tests/lightning_modules/test_training.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules.config import RunConfig
from lightning_modules.training import build_run, create_trainer
from tests.helpers.transfer_runs import seeded_convnet, transfer_config

_BN = nn.modules.batchnorm._BatchNorm


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> list[str]:
    return [name for name, tensor in module.state_dict().items() if not torch.equal(before[name], tensor)]


class _ModeRecorder(pl.Callback):
    """Records, per epoch, whether the backbone's batch norm layers were training, and its weights."""

    def __init__(self) -> None:
        self.bn_training: dict[int, set[bool]] = {}
        self.backbone_after: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        modes = {m.training for m in pl_module.model.backbone.modules() if isinstance(m, _BN)}
        self.bn_training.setdefault(trainer.current_epoch, set()).update(modes)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.backbone_after[trainer.current_epoch] = _snapshot(pl_module.model.backbone)


def _fit(config: RunConfig, **build: Any) -> tuple[Any, _ModeRecorder, dict[str, torch.Tensor]]:
    parts = build_run(config, **build)
    before = _snapshot(parts.module.model)
    recorder = _ModeRecorder()
    trainer = create_trainer(config.trainer, callbacks=[recorder], accelerator="cpu")
    trainer.fit(parts.module, datamodule=parts.datamodule)
    return parts, recorder, before


def test_frozen_backbone_is_unchanged_by_a_real_fit_and_its_bn_stays_in_eval(tmp_path: Path) -> None:
    source = seeded_convnet()
    path = tmp_path / "pretrained.pt"
    torch.save(source.state_dict(), path)
    parts, recorder, before = _fit(transfer_config(weights=str(path), freeze="backbone"))
    model = parts.module.model
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items() if k.startswith("blocks."))
    changed = _changed(before, model)
    assert changed and all(name.startswith("head.") for name in changed)  # running stats included
    assert recorder.bn_training == {0: {False}}


def test_unfreeze_after_n_epochs_trains_the_backbone(tmp_path: Path) -> None:
    config = transfer_config(freeze="backbone", unfreeze_after=1)
    config.trainer.max_epochs = 2
    parts, recorder, before = _fit(config)
    blocks = {k.removeprefix("blocks."): v for k, v in before.items() if k.startswith("blocks.")}
    assert not [k for k, v in recorder.backbone_after[0].items() if not torch.equal(blocks[k], v)]
    assert recorder.bn_training == {0: {False}, 1: {True}}
    changed = [k for k, v in recorder.backbone_after[1].items() if not torch.equal(blocks[k], v)]
    assert any(k.endswith("conv0.weight") for k in changed)
    assert any(k.endswith("running_mean") for k in changed)
    assert all(p.requires_grad for p in parts.module.model.parameters())
