"""The most confident mistakes: the images a network got wrong while being sure of itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from search.inspect.drawing import grid, input_rgb, mosaic, save, short
from search.inspect.evaluation import Predictions

MAX_MISTAKES = 16


def plot_misclassified(
    display: Tensor, predictions: Predictions, class_names: Sequence[str], path: Path
) -> Path:
    """The most confident mistakes, each titled with the true and the predicted class."""
    wrong = (predictions.labels != predictions.predicted).nonzero().flatten()
    wrong = wrong[predictions.confidence[wrong].argsort(descending=True)][:MAX_MISTAKES].tolist()
    rows, columns = grid(max(len(wrong), 1), 4)
    cells: list[list[np.ndarray | None]] = [[None] * columns for _ in range(rows)]
    titles = [[""] * columns for _ in range(rows)]
    for slot, index in enumerate(wrong):
        true = class_names[int(predictions.labels[index])]
        guess = class_names[int(predictions.predicted[index])]
        cells[slot // columns][slot % columns] = input_rgb(display[index])
        titles[slot // columns][slot % columns] = (
            f"true: {short(true)}\npredicted: {short(guess)} ({float(predictions.confidence[index]):.0%})"
        )
    if not wrong:
        cells[0][0] = np.ones((32, 32, 3))
        titles[0][0] = "no mistakes"
    total = int((predictions.labels != predictions.predicted).sum())
    title = (
        f"misclassified: the {len(wrong)} most confident of {total} mistakes\n"
        f"in {len(predictions.labels):,} validation images"
    )
    return save(mosaic(cells, titles, title, cell_inches=1.6, title_lines=2), path)
