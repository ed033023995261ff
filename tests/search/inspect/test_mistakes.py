"""`search.inspect.mistakes`: the most confident mistakes, or a picture that says there are none."""

from __future__ import annotations

from pathlib import Path

import torch

from search.inspect.evaluation import Predictions
from search.inspect.mistakes import plot_misclassified
from tests.helpers.pictures import assert_png


def test_mistakes_and_no_mistakes_are_pictures(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    wrong = Predictions(labels, torch.tensor([0, 2, 2, 1, 0]), torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]))
    assert_png(plot_misclassified(images, wrong, ["zero", "one", "two"], tmp_path / "wrong.png"))
    right = Predictions(labels, labels.clone(), torch.full((5,), 0.9))
    assert_png(plot_misclassified(images, right, ["zero", "one", "two"], tmp_path / "right.png"))
