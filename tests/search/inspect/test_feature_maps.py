"""`search.inspect.feature_maps`: which outputs are a network's blocks, and their pictures."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lightning_modules.config import ConvNetConfig
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.layer_table import LayerInfo
from search.inspect.feature_maps import (
    block_file_name,
    capture_outputs,
    conv_blocks,
    draw_feature_maps,
    receptive_fields,
)
from tests.helpers.pictures import assert_png


def test_feature_map_blocks_of_a_network_without_blocks_are_its_stages() -> None:
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip
    names = [name for name, _ in conv_blocks(network, torch.zeros(1, 1, 8, 8))]
    assert names == ["2", "4"]


def test_a_convnets_blocks_are_its_blocks_and_each_gets_a_picture(tmp_path: Path) -> None:
    network = ConvNet(ConvNetConfig(channels=[4, 8]), in_channels=1, num_classes=3, image_size=(8, 8)).eval()
    display = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    inputs = display.float() / 255
    assert [name for name, _ in conv_blocks(network, inputs)] == ["blocks.0", "blocks.1"]
    logits, outputs = capture_outputs(network, [network.blocks[0]], inputs)
    assert logits.shape == (2, 3) and outputs[0].shape[:2] == (2, 4)
    paths = draw_feature_maps(network, inputs, display, tmp_path, titles=["a", "b"], fields={"blocks.0": 3})
    assert [p.name for p in paths] == ["feature_maps_block0.png", "feature_maps_block1.png"]
    for path in paths:
        assert_png(path)


def test_file_names_and_receptive_fields_of_blocks() -> None:
    assert block_file_name("blocks.0") == "feature_maps_block0.png"
    assert block_file_name("layer1.0.conv2") == "feature_maps_layer1_0_conv2.png"
    rows = [
        LayerInfo("blocks.0.conv0", "conv", receptive_field=3),
        LayerInfo("blocks.0.pool", "pool", receptive_field=4),
        LayerInfo("head", "linear"),
    ]
    assert receptive_fields(rows) == {"blocks": 4, "blocks.0": 4, "blocks.0.conv0": 3, "blocks.0.pool": 4}
