"""`search.inspect.feature_maps`: which outputs are a network's blocks, and their pictures."""

from __future__ import annotations

import torch
from torch import nn

from search.inspect.feature_maps import conv_blocks


def test_feature_map_blocks_of_a_network_without_blocks_are_its_stages() -> None:
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip
    names = [name for name, _ in conv_blocks(network, torch.zeros(1, 1, 8, 8))]
    assert names == ["2", "4"]
