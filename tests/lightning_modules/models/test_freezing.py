"""Freezing the feature extractor: `backbone`, `until:<layer>`, frozen batch norm kept in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_modules.models.freezing import (
    apply_freeze,
    backbone_and_head,
    set_frozen_bn_eval,
    top_level_layers,
    unfreeze_all,
)
from lightning_modules.models.registry import create_model


def _convnet() -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "convnet", in_channels=1, num_classes=3, image_size=(8, 8), channels=[4, 8], hidden=[8]
    )


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _step(model: nn.Module, in_channels: int = 1, size: int = 8) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    model.train()
    set_frozen_bn_eval(model)
    loss = model(torch.randn(4, in_channels, size, size)).square().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> dict[str, bool]:
    return {name: not torch.equal(before[name], tensor) for name, tensor in module.state_dict().items()}


def test_frozen_backbone_is_unchanged_and_unfreeze_all_trains_it() -> None:
    model = _convnet()
    frozen = apply_freeze(model, "backbone")
    assert frozen and all(name.startswith("blocks.") for name in frozen)
    blocks, head = _snapshot(model.blocks), _snapshot(model.head)
    _step(model)
    assert not any(_changed(blocks, model.blocks).values())  # running stats included: BN stayed in eval
    assert all(_changed(head, model.head).values())
    unfreeze_all(model)
    _step(model)
    assert all(_changed(blocks, model.blocks).values())


def test_until_freezes_the_layers_before_the_named_one() -> None:
    model = create_model("resnet18", in_channels=3, num_classes=2, image_size=(32, 32))
    frozen = set(apply_freeze(model, "until:layer3"))
    expected = {
        name
        for name, _ in model.named_parameters()
        if name.startswith(("backbone.conv1", "backbone.bn1", "backbone.layer1", "backbone.layer2"))
    }
    assert frozen == expected
    assert model.backbone.layer3[0].conv1.weight.requires_grad and model.head.fc.weight.requires_grad
    before = _snapshot(model.backbone.layer2)
    _step(model, in_channels=3, size=32)
    assert not any(_changed(before, model.backbone.layer2).values())
    assert not model.backbone.layer2[0].bn1.training and model.backbone.layer3[0].bn1.training


def test_until_on_a_convnet_accepts_block_numbers() -> None:
    model = _convnet()
    assert apply_freeze(model, "until:1") == [
        "blocks.0.conv0.weight",
        "blocks.0.bn0.weight",
        "blocks.0.bn0.bias",
    ]
    assert apply_freeze(model, "until:blocks.1") == apply_freeze(model, "until:1")
    assert apply_freeze(model, "none") == []
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_until_layer_lists_the_valid_ones() -> None:
    model = create_model("resnet18", in_channels=3, num_classes=2, image_size=(32, 32))
    assert top_level_layers(model)[:4] == ["conv1", "bn1", "relu", "maxpool"]
    with pytest.raises(
        ValueError, match=r"until:layer9 names no layer.*valid top-level layers: conv1, bn1, .*layer4"
    ):
        apply_freeze(model, "until:layer9")
    with pytest.raises(ValueError, match="freeze must be 'none', 'backbone' or 'until:<layer>'"):
        apply_freeze(model, "head")


def test_frozen_bn_stays_in_eval_mode() -> None:
    model = create_model(
        "mobilenet_v3_small", in_channels=1, num_classes=2, image_size=(8, 8), freeze="backbone"
    )
    model.train()
    names = set_frozen_bn_eval(model)
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert names and len(names) == len(bns) and not any(bn.training for bn in bns)
    assert model.head.training
    unfreeze_all(model)
    assert all(bn.training for bn in bns)  # back to the model's mode


def test_backbone_and_head_split_the_parameters() -> None:
    model = create_model("resnet18", in_channels=1, num_classes=2, image_size=(8, 8))
    groups = backbone_and_head(model)
    assert len(groups["backbone"]) + len(groups["head"]) == len(list(model.parameters()))
    assert {id(p) for p in groups["head"]} == {id(p) for p in model.head.parameters()}
    with pytest.raises(ValueError, match=r"has no \.backbone"):
        apply_freeze(nn.Linear(2, 2), "backbone")
