"""`search.inspect.drawing`: the PNG every picture is written as, and its mosaics of small pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from search.inspect.drawing import DPI, as_picture, grid, input_rgb, mosaic, resize, rgb, save, short


def test_save_writes_a_png_of_the_figures_size_into_a_new_folder(tmp_path: Path) -> None:
    figure = Figure(figsize=(2.0, 1.0))
    path = save(figure, tmp_path / "new" / "picture.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (2 * DPI, DPI)


def test_gray_and_rgb_images_become_what_imshow_wants() -> None:
    gray, cmap = as_picture(torch.full((1, 4, 5), 7, dtype=torch.uint8))
    assert gray.shape == (4, 5) and cmap == "gray"
    colour, cmap = as_picture(torch.full((3, 4, 5), 255, dtype=torch.uint8))
    assert colour.shape == (4, 5, 3) and cmap is None and float(colour.max()) == 1.0
    assert input_rgb(torch.full((1, 2, 2), 255, dtype=torch.uint8)).shape == (2, 2, 3)
    assert np.allclose(input_rgb(torch.full((1, 2, 2), 255, dtype=torch.uint8)), 1.0)


def test_colormap_scaling_clips_to_its_range() -> None:
    picture = rgb(np.array([[-1.0, 0.0, 2.0]]), "gray", vmin=0.0, vmax=1.0)
    assert picture.shape == (1, 3, 3)
    assert picture[0, 0].tolist() == picture[0, 1].tolist() and np.allclose(picture[0, 2], 1.0)
    flat = rgb(np.ones((2, 2)), "gray", vmin=1.0, vmax=1.0)  # no range: all at the bottom of the map
    assert np.allclose(flat, flat[0, 0])


def test_grid_resize_and_short_names() -> None:
    assert grid(10, 4) == (3, 4) and grid(3, 8) == (1, 3) and grid(0, 4) == (0, 1)
    assert resize(np.arange(4.0).reshape(2, 2), 4, 4).tolist()[0] == [0.0, 0.0, 1.0, 1.0]
    assert short("short") == "short"
    assert short("a-very-long-class-name") == "a-very-long-c…" and len(short("x" * 40, 18)) == 18


def test_mosaic_draws_every_cell_in_one_axes() -> None:
    cells = [[np.zeros((8, 8, 3)), None], [np.ones((4, 4, 3)), np.ones((8, 8, 3))]]
    figure = mosaic(cells, [["a", ""], ["b", "c"]], "a title\nover two lines")
    assert len(figure.axes) == 1
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"a", "b", "c"} <= texts
