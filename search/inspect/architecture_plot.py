"""An architecture as two bar charts: what each layer sees, and what weight sharing saves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lightning_modules.models.layer_table import LayerInfo
from search.inspect.drawing import TITLE_Y, save, short


def plot_architecture(rows: Sequence[LayerInfo], image_size: tuple[int, int], path: Path) -> Path:
    """Per conv/pool layer: receptive field vs feature-map side; per conv: params vs dense equivalent."""
    spatial = [row for row in rows if row.kind in ("conv", "pool") and len(row.out_shape) == 3]
    if not spatial:
        spatial = [row for row in rows if len(row.out_shape) == 3]
    convs = [row for row in rows if row.kind == "conv"]
    figure = Figure(figsize=(max(6.0, 0.7 * len(spatial) + 3), 7.5))
    figure.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.14, hspace=0.75)  # fixed: faster
    top, bottom = figure.subplots(2, 1)
    positions = np.arange(len(spatial))
    names = [short(row.name, 18) for row in spatial]
    fields = [row.receptive_field or 0 for row in spatial]
    sides = [row.out_shape[1] for row in spatial]
    top.bar(positions - 0.2, fields, width=0.4, label="receptive field (input pixels)", color="tab:orange")
    top.bar(positions + 0.2, sides, width=0.4, label="feature map height (pixels)", color="tab:blue")
    top.axhline(image_size[0], color="gray", linestyle="--", label=f"input height ({image_size[0]})")
    top.set_xticks(positions, names, rotation=40, ha="right", fontsize=8)
    top.set_ylabel("pixels")
    top.set_title("what each layer sees (receptive field) and how big its map is", fontsize=10, y=TITLE_Y)
    top.set_ylim(0, 1.45 * max([*fields, *sides, image_size[0]]))  # room for the legend
    top.legend(fontsize=8, loc="upper left", ncols=2)
    if convs:
        where = np.arange(len(convs))
        bottom.bar(
            where - 0.2, [row.params for row in convs], width=0.4, label="conv parameters", color="tab:green"
        )
        bottom.bar(
            where + 0.2,
            [row.dense_params for row in convs],
            width=0.4,
            label="dense layer, same in/out",
            color="tab:red",
        )
        bottom.set_yscale("log")
        bottom.set_ylim(top=30 * max(row.dense_params for row in convs))
        bottom.set_xticks(where, [short(row.name, 18) for row in convs], rotation=40, ha="right", fontsize=8)
        bottom.set_ylabel("parameters (log scale)")
        bottom.set_title(
            "weight sharing: parameters of each conv layer\nvs a dense layer with the same input and output",
            fontsize=10,
            y=TITLE_Y,
        )
        bottom.legend(fontsize=8, loc="upper left", ncols=2)
    else:
        bottom.set_axis_off()
    return save(figure, path)
