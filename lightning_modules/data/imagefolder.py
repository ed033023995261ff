"""Image folders (`dataset: imagefolder`), decoded with PIL: `root/<class>/*.png`, or `train/`,
`val/` and `test/` subfolders of class folders.

Files are read as users have them: palette, CMYK, 16-bit and EXIF-rotated images are converted
(16-bit scaled, not clipped; rotated upright), files that cannot be read are skipped with a note
(or refused with `bad_images: stop`), and mixed sizes are resized to the most common one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from lightning_modules.data.arrays import (
    HOLDOUT_FRACTION,
    HOLDOUT_SEED,
    DatasetError,
    DatasetNotFoundError,
    ImageArrays,
    check_memory,
    not_found,
    stratified_split,
    with_holdout,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_EXIF_ORIENTATION = 0x0112
_TURNED = frozenset({5, 6, 7, 8})  # orientations that swap width and height


@dataclass(frozen=True)
class FolderOptions:
    """What only image folders use: a square size to resize to, and what to do with unreadable files."""

    image_size: int | None = None
    bad_images: Literal["skip", "stop"] = "skip"


@dataclass
class _FolderFiles:
    """Every image file of a folder dataset, per split, and what reading them found."""

    splits: dict[str, tuple[list[Path], torch.Tensor]]
    classes: list[str]
    bad: dict[Path, str] = field(default_factory=dict)  # file -> why it cannot be read
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [path for paths, _ in self.splits.values() for path in paths]


def load_imagefolder(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    if root is None:
        raise DatasetNotFoundError(
            "imagefolder needs data.root: a folder of class subfolders (root/cls/*.png) "
            "or of train/ val/ test/ subfolders."
        )
    if not root.is_dir():
        raise not_found(
            "imagefolder", [root], "set data.root to a folder of class subfolders (root/cls/*.png)."
        )
    files = _scan_folder(root)
    headers = _read_headers(files)
    size = _target_size(files, headers, folder.image_size)
    gray = all(headers[path][1] for path in files.paths if path in headers)
    decoded = {
        split: _decode_split(files, paths, labels, size, gray)
        for split, (paths, labels) in files.splits.items()
    }
    _report_bad(files, root, folder.bad_images)
    return _assemble(decoded, files.classes, tuple(files.notes))


def _scan_folder(root: Path) -> _FolderFiles:
    split_folders = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" not in split_folders:
        split_folders = {"all": root}
    per_split = {split: _scan_classes(path) for split, path in split_folders.items()}
    classes = sorted({cls for found in per_split.values() for cls in found})
    if len(classes) < 2:
        raise DatasetError(
            f"imagefolder found 1 class ({classes[0]!r}) in {root}; a classifier needs at least 2: "
            f"put each class's images in its own subfolder, {root}/<class>/*.png."
        )
    return _FolderFiles({split: _flatten(found, classes) for split, found in per_split.items()}, classes)


def _scan_classes(folder: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if images:
            files[sub.name] = images
    if not files:
        suffixes = "|".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise not_found(
            "imagefolder images",
            [folder],
            f"put images in class subfolders: {folder}/<class>/*.{{{suffixes}}}.",
        )
    return files


def _flatten(files: dict[str, list[Path]], classes: Sequence[str]) -> tuple[list[Path], torch.Tensor]:
    paths = [path for cls in classes for path in files.get(cls, [])]
    labels = [index for index, cls in enumerate(classes) for _ in files.get(cls, [])]
    return paths, torch.tensor(labels, dtype=torch.int64)


def _read_headers(files: _FolderFiles) -> dict[Path, tuple[tuple[int, int], bool]]:
    """(width, height) as displayed (EXIF rotation applied) and whether it is gray, per readable file."""
    from PIL import Image  # lazy: PIL (~25 ms) only for datasets that read image files

    headers = {}
    for path in files.paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
                turned = image.getexif().get(_EXIF_ORIENTATION) in _TURNED
                headers[path] = ((height, width) if turned else (width, height), image.mode in _GRAY_MODES)
        except Exception as error:  # any failure to read a user's file means the same: skip or stop
            files.bad[path] = _reason(error)
    return headers


def _target_size(
    files: _FolderFiles, headers: dict[Path, tuple[tuple[int, int], bool]], image_size: int | None
) -> tuple[int, int]:
    """(width, height) every image is decoded to: `image_size` squared, else the most common size."""
    if image_size is not None:
        return image_size, image_size
    counts = Counter(size for size, _ in headers.values())
    if not counts:
        raise _no_readable_image(files)
    (width, height), most = counts.most_common(1)[0]
    if len(counts) > 1:
        files.notes.append(
            f"images differ in size ({len(counts)} sizes; {width}x{height} in {most} of {len(headers)} "
            f"files); resized all to {width}x{height} (width x height), the most common; "
            "set data.image_size to choose a square size instead."
        )
    return width, height


def _decode_split(
    files: _FolderFiles, paths: list[Path], labels: torch.Tensor, size: tuple[int, int], gray: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a split's readable files into one uint8 (N, C, H, W) tensor and their labels."""
    width, height = size
    check_memory(len(paths) * (1 if gray else 3) * width * height, f"{len(paths)} images of {width}x{height}")
    out = np.empty((len(paths), height, width, 1 if gray else 3), dtype=np.uint8)
    kept = torch.zeros(len(paths), dtype=torch.bool)
    for index, path in enumerate(paths):
        if path in files.bad:
            continue
        try:
            out[index] = _decode_file(path, size, gray).reshape(height, width, -1)
        except Exception as error:  # truncated data shows only when the pixels are read
            files.bad[path] = _reason(error)
            continue
        kept[index] = True
    images = torch.from_numpy(out).permute(0, 3, 1, 2)[kept].contiguous()
    return images, labels[kept]


def _decode_file(path: Path, size: tuple[int, int], gray: bool) -> np.ndarray:
    from PIL import Image, ImageOps  # lazy: PIL (~25 ms) only for datasets that read image files

    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
    image = _eight_bit(image)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # palette transparency, converted without PIL's warning
    image = image.convert("L" if gray else "RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image)


def _eight_bit(image: PILImage) -> PILImage:
    """16-bit and 32-bit gray scaled to 0..255 (PIL's own conversion clips them at 255)."""
    from PIL import Image  # lazy: PIL (~25 ms) only for datasets that read image files

    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    pixels = np.asarray(image, dtype=np.float64)
    peak = float(pixels.max()) if pixels.size else 0.0
    if image.mode.startswith("I;16") or peak > 255:
        pixels = pixels / 257.0
    elif image.mode == "F" and peak <= 1.0:
        pixels = pixels * 255.0
    return Image.fromarray(np.rint(pixels).clip(0, 255).astype(np.uint8), mode="L")


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120]}" if text else type(error).__name__


def _report_bad(files: _FolderFiles, root: Path, bad_images: str) -> None:
    if not files.bad:
        return
    total = len(files.paths)
    if len(files.bad) == total:
        raise _no_readable_image(files)
    order = {path: index for index, path in enumerate(files.paths)}
    first = min(files.bad, key=order.__getitem__)
    named = f"first: {first}: {files.bad[first]}"
    if bad_images == "stop":
        raise DatasetError(
            f"{len(files.bad)} of {total} images cannot be read ({named}); fix or remove them, "
            "or set data.bad_images: skip to leave them out."
        )
    files.notes.insert(
        0,
        f"skipped {len(files.bad)} of {total} images that cannot be read ({named}); "
        "set data.bad_images: stop to refuse such a folder.",
    )


def _no_readable_image(files: _FolderFiles) -> DatasetError:
    first = files.paths[0]
    return DatasetError(
        f"none of the {len(files.paths)} images can be read (first: {first}: {files.bad.get(first, '?')}); "
        "check that they are PNG, JPEG or BMP files."
    )


def _assemble(
    decoded: dict[str, tuple[torch.Tensor, torch.Tensor]], classes: list[str], notes: tuple[str, ...]
) -> ImageArrays:
    if "all" in decoded:
        images, labels = decoded["all"]
        return with_holdout(images, labels, classes, notes)
    train_images, train_labels = decoded["train"]
    if "test" in decoded:
        test_images, test_labels = decoded["test"]
    else:
        held, kept = stratified_split(train_labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
        test_images, test_labels = train_images[held], train_labels[held]
        train_images, train_labels = train_images[kept], train_labels[kept]
    val_images, val_labels = decoded.get("val", (None, None))
    return ImageArrays(
        train_images, train_labels, test_images, test_labels, classes, val_images, val_labels, notes
    )
