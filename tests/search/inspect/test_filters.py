"""`search.inspect.filters`: the first convolution, and its filters as one picture."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from search.inspect.filters import MAX_FILTERS, first_conv, plot_filters
from tests.helpers.pictures import assert_png


def test_first_conv_is_the_first_in_module_order() -> None:
    network = nn.Sequential(nn.Flatten(), nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3))
    assert first_conv(network) is network[1]
    assert first_conv(nn.Sequential(nn.Linear(2, 2))) is None


def test_filters_of_gray_rgb_and_many_channel_inputs_are_pictures(tmp_path: Path) -> None:
    for in_channels in (1, 3, 5):
        path = plot_filters(nn.Conv2d(in_channels, 6, 5), tmp_path / f"filters{in_channels}.png")
        assert_png(path)


def test_at_most_max_filters_are_drawn(tmp_path: Path) -> None:
    path = plot_filters(nn.Conv2d(1, MAX_FILTERS + 16, 3), tmp_path / "many.png")
    assert_png(path)
