"""`search.inspect.architecture_plot`: an architecture table as two bar charts."""

from __future__ import annotations

from pathlib import Path

from lightning_modules.config import ConvNetConfig
from lightning_modules.models.layer_table import LayerInfo
from lightning_modules.models.shapes import architecture_table
from search.inspect.architecture_plot import plot_architecture
from tests.helpers.pictures import assert_png


def test_a_convnets_table_is_drawn(tmp_path: Path) -> None:
    rows = architecture_table(ConvNetConfig(channels=[4, 8]), 1, (16, 16), 3)
    assert any(row.kind == "conv" for row in rows)
    assert_png(plot_architecture(rows, (16, 16), tmp_path / "architecture.png"))


def test_a_table_without_convolutions_is_still_drawn(tmp_path: Path) -> None:
    rows = [
        LayerInfo("stem", "other", out_shape=(4, 8, 8), receptive_field=3, params=10),
        LayerInfo("head", "linear", out_shape=(3,), params=30),
    ]
    assert_png(plot_architecture(rows, (8, 8), tmp_path / "no_convs.png"))
