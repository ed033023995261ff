"""What a picture test checks: a real PNG of a readable size; the pictures every trial leaves."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

TRIAL_PICTURES = {
    "architecture.png",
    "filters.png",
    "feature_maps_block0.png",
    "feature_maps_block1.png",
    "confusion_matrix.png",
    "misclassified.png",
}


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= 100, f"{path.name} is only {image.size}"
