"""Image files for the data tests: class folders of PNGs, gray or RGB, and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_pngs(folder: Path, classes: dict[str, int], size: tuple[int, int], mode: str = "L") -> None:
    rng = np.random.default_rng(len(classes))
    for name, count in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / name / f"{index}.png")


def gray_pngs(
    folder: Path, count: int, size: tuple[int, int] = (6, 6), value: int = 0, start: int = 0
) -> None:
    """`count` gray PNGs of `size` (width, height) in `folder`, pixel values `value + index`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        pixels = np.full((size[1], size[0]), value + index, dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:03d}.png")


def two_classes(root: Path, count: int = 5) -> None:
    gray_pngs(root / "a", count, value=10)
    gray_pngs(root / "b", count, value=100)


def broken_files(folder: Path) -> list[Path]:
    """A zero-byte file, one that is no image, and a PNG cut in half; sorted as the loader sees them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "900-empty.png").write_bytes(b"")
    (folder / "901-garbage.png").write_bytes(b"\x89PNG but not really" * 10)
    whole = folder / "902-whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(whole)
    data = whole.read_bytes()
    truncated = folder / "902-truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return [folder / "900-empty.png", folder / "901-garbage.png", truncated]
