"""The `convnet`: its blocks and head, and its factory's weights and freezing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.registry import create_model


def test_convnet_structure() -> None:
    config = ConvNetConfig(channels=[4, 8], batch_norm=True, dropout=0.1, hidden=[16], global_pool=True)
    model = ConvNet(config, in_channels=1, num_classes=3, image_size=(8, 8))
    assert len(model.blocks) == 2 and model.backbone is model.blocks
    assert list(model.blocks[0]._modules) == ["conv0", "bn0", "act0", "pool", "drop"]
    assert model.blocks[0].conv0.bias is None
    assert list(model.head._modules) == ["pool", "flatten", "hidden0", "act0", "fc"]
    no_bn = ConvNet(
        ConvNetConfig(channels=[4], batch_norm=False), in_channels=1, num_classes=3, image_size=(8, 8)
    )
    assert no_bn.blocks[0].conv0.bias is not None


def _pretrainable(num_classes: int = 10, **fields: Any) -> nn.Module:
    """A small convnet for 8x8 gray images, the same weights on every call with the same fields."""
    torch.manual_seed(1)
    fields = {"channels": [4, 8], **fields}
    return create_model("convnet", in_channels=1, num_classes=num_classes, image_size=(8, 8), **fields)


def test_convnet_loads_a_local_file_with_a_new_head(tmp_path: Path) -> None:
    source = _pretrainable(num_classes=3)
    path = tmp_path / "pretrained.pt"
    torch.save(source.state_dict(), path)
    model = _pretrainable(num_classes=5, weights=str(path))
    assert model.head.fc.weight.shape == (5, 32)
    assert not torch.equal(model.head.fc.weight[:3], source.head.fc.weight)
    body = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    assert body and all(torch.equal(model.state_dict()[k], v) for k, v in body.items())
    same = _pretrainable(num_classes=3, weights=str(path))
    assert all(torch.equal(same.state_dict()[k], v) for k, v in source.state_dict().items())


def test_convnet_config_freezes_its_blocks(tmp_path: Path) -> None:
    model = _pretrainable(freeze="until:1")
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {name for name, _ in model.named_parameters() if name.startswith("blocks.0.")}
    with pytest.raises(ValueError, match="freeze must be 'none', 'backbone' or 'until:<layer>'"):
        _pretrainable(freeze="everything")
