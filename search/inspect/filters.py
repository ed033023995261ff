"""The first convolution's filters as a picture: what the network looks for in the raw pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from search.inspect.drawing import grid, mosaic, rgb, save

MAX_FILTERS = 64


def first_conv(network: nn.Module) -> nn.Conv2d | None:
    return next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)


def plot_filters(conv: nn.Conv2d, path: Path) -> Path:
    """The first layer's filters as a grid: RGB for 3 input channels, else red/blue for +/- weights."""
    weight = conv.weight.detach().float().cpu()[:MAX_FILTERS]
    out_channels, in_channels, kh, kw = weight.shape
    rows, columns = grid(out_channels, 8)
    is_rgb = in_channels == 3
    cells: list[list[np.ndarray | None]] = [[None] * columns for _ in range(rows)]
    titles = [[""] * columns for _ in range(rows)]
    for index in range(out_channels):
        kernel = weight[index]
        scale = float(kernel.abs().max().clamp_min(1e-8))
        if is_rgb:
            picture = (kernel / scale / 2 + 0.5).permute(1, 2, 0).numpy()
        else:
            kernel = kernel.mean(dim=0)
            scale = float(kernel.abs().max().clamp_min(1e-8))
            picture = rgb(kernel.numpy(), "RdBu_r", vmin=-scale, vmax=scale)
        cells[index // columns][index % columns] = picture
    how = "RGB, scaled per filter" if is_rgb else "red: positive, blue: negative weight, scaled per filter"
    if in_channels not in (1, 3):
        how += f"; mean over {in_channels} input channels"
    shown = (
        f"{out_channels} of {conv.out_channels}" if conv.out_channels > out_channels else str(out_channels)
    )
    title = f"first-layer filters: {shown} filters of {kh}x{kw}, row by row\n({how})"
    return save(mosaic(cells, titles, title, cell_inches=1.0), path)
