"""How every picture is drawn: one labelled PNG with matplotlib's object API on the Agg canvas.

No pyplot and no global backend switch, so that drawing is safe next to a live progress display.
Images come as tensors: uint8 `C x H x W` as the datamodule holds them, or floats in [0, 1].
A grid of small pictures is drawn as ONE image in one axes (`mosaic`): far faster than one axes each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

DPI = 90
PNG_COMPRESSION = 1  # zlib level: a few % larger files, several times faster to write than the default 6
TITLE_Y = 1.02  # a fixed title height spares matplotlib measuring every tick label to place it


def save(figure: Figure, path: Path) -> Path:
    """`figure` as a PNG at `path` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png", pil_kwargs={"compress_level": PNG_COMPRESSION})
    return path


def as_picture(image: Tensor) -> tuple[np.ndarray, str | None]:
    """A `C x H x W` image as what `imshow` wants: `H x W` with a gray colormap, or `H x W x 3`."""
    array = image.detach().cpu().float().numpy()
    if array.shape[0] == 3:
        top = 255.0 if array.max() > 1 else 1.0
        return np.clip(array.transpose(1, 2, 0) / top, 0, 1), None
    return array.mean(axis=0), "gray"


def hide_axes(axes: Axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def grid(count: int, columns: int) -> tuple[int, int]:
    """Rows and columns of a grid for `count` pictures, at most `columns` wide."""
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def short(name: str, width: int = 14) -> str:
    """`name` cut to `width` characters with an ellipsis (tick labels, titles)."""
    return name if len(name) <= width else name[: width - 1] + "…"


def rgb(picture: np.ndarray, cmap: str | None, *, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """An `H x W` array through a colormap (or an `H x W x 3` array as is) as `H x W x 3` in [0, 1]."""
    if picture.ndim == 3:
        return picture
    scaled = (picture - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(picture)
    return colormaps[cmap or "gray"](np.clip(scaled, 0, 1))[..., :3]


def input_rgb(image: Tensor) -> np.ndarray:
    """An input image (uint8 or float, gray or RGB) as `H x W x 3` in [0, 1]."""
    picture, cmap = as_picture(image)
    if picture.ndim == 2:
        top = 255.0 if picture.max() > 1 else 1.0
        return rgb(picture, cmap, vmax=top)
    return picture


def resize(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize, so that every cell of a mosaic has the same size."""
    rows = (np.arange(height) * picture.shape[0] // height).clip(0, picture.shape[0] - 1)
    columns = (np.arange(width) * picture.shape[1] // width).clip(0, picture.shape[1] - 1)
    return picture[rows][:, columns]


def mosaic(
    cells: Sequence[Sequence[np.ndarray | None]],
    titles: Sequence[Sequence[str]],
    title: str,
    *,
    cell_inches: float = 1.25,
    title_lines: int = 1,
) -> Figure:
    """A grid of RGB pictures drawn as ONE image in one axes, each titled (fast: one axes, no layout)."""
    pictures = [cell for row in cells for cell in row if cell is not None]
    height = max(max(p.shape[0] for p in pictures), 32)
    width = max(max(p.shape[1] for p in pictures), 32)
    rows, columns = len(cells), max(len(row) for row in cells)
    band = 0.17 * title_lines + 0.06  # inches above each cell for its title
    gap = 0.12
    cell_height = cell_inches * height / width
    band_px, gap_px = round(band / cell_inches * width), round(gap / cell_inches * width)
    canvas = np.ones((rows * (height + band_px), columns * (width + gap_px), 3))
    top_inches = 0.25 + 0.18 * (title.count("\n") + 1)
    figure = Figure(figsize=(columns * (cell_inches + gap), rows * (cell_height + band) + top_inches))
    axes = figure.add_axes((0, 0, 1, 1 - top_inches / figure.get_figheight()))
    for row, line in enumerate(cells):
        for column, cell in enumerate(line):
            if cell is None:
                continue
            y, x = row * (height + band_px) + band_px, column * (width + gap_px) + gap_px // 2
            canvas[y : y + height, x : x + width] = resize(cell, height, width)
            text = titles[row][column] if row < len(titles) and column < len(titles[row]) else ""
            axes.text(x + width / 2, y - band_px * 0.1, text, ha="center", va="bottom", fontsize=7)
    axes.imshow(canvas, interpolation="nearest", aspect="auto")
    axes.set_axis_off()
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / figure.get_figheight())
    return figure
