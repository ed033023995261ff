"""Image datasets decoded once per process into uint8 tensors.

`load_dataset(name, root, download)` returns an `ImageArrays` whose tensors are cached for the life
of the process: several trials in one worker share them and never decode twice. The cached tensors
are shared, so callers must never modify them in place (index them, which copies).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from lightning_modules.machine import available_memory

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST",
    "IMAGE_SUFFIXES",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageArrays",
    "clear_cache",
    "default_data_dir",
    "load_dataset",
    "stratified_split",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "CONVTUNE_DATA"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
HOLDOUT_FRACTION = 0.2  # test share carved (seeded) where a source has no test split of its own
HOLDOUT_SEED = 0
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_EXIF_ORIENTATION = 0x0112
_TURNED = frozenset({5, 6, 7, 8})  # orientations that swap width and height


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where convtune looked; the message says where it looked and how to get it."""


class DatasetError(ValueError):
    """A dataset or data setting that cannot be used (one class only, unreadable files, a split that
    selects nothing); the one-line message says what to change."""


@dataclass(frozen=True, eq=False)
class ImageArrays:
    """A whole dataset in memory: uint8 images (N, C, H, W) and int64 labels (N,).

    `val_images`/`val_labels` are set only when the source ships its own validation split
    (an image folder with `val/`); otherwise the validation split is carved from train.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    notes: tuple[str, ...] = ()  # what loading decided for the user (files skipped, a size picked)

    def __post_init__(self) -> None:
        _check_pair("train", self.train_images, self.train_labels)
        _check_pair("test", self.test_images, self.test_labels)
        if self.val_images is not None or self.val_labels is not None:
            _check_pair("val", self.val_images, self.val_labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])


def _check_pair(split: str, images: torch.Tensor | None, labels: torch.Tensor | None) -> None:
    if images is None or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{split} images must be a uint8 tensor (N, C, H, W); got {_describe(images)}.")
    if labels is None or labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{split} labels must be an int64 tensor ({images.shape[0]},); got {_describe(labels)}."
        )


def _describe(tensor: torch.Tensor | None) -> str:
    return "None" if tensor is None else f"{tensor.dtype} {tuple(tensor.shape)}"


# ---------------------------------------------------------------------------------------------------
# entry point


@dataclass(frozen=True)
class FolderOptions:
    """What only image folders use: a square size to resize to, and what to do with unreadable files."""

    image_size: int | None = None
    bad_images: Literal["skip", "stop"] = "skip"


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    image_size: int | None = None,
    bad_images: Literal["skip", "stop"] = "skip",
) -> ImageArrays:
    """The named dataset, decoded once per process (later calls return the same object).

    `image_size` and `bad_images` matter only for `imagefolder` (images are resized while decoding;
    unreadable files are skipped or refused); other sources are resized by the data module.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}.")
    resolved = str(Path(root).expanduser().resolve()) if root is not None else None
    folder = FolderOptions(image_size, bad_images) if name == "imagefolder" else FolderOptions()
    return _load_cached(name, resolved, bool(download), folder, str(default_data_dir()))


@lru_cache(maxsize=8)
def _load_cached(
    name: str, root: str | None, download: bool, folder: FolderOptions, data_dir: str
) -> ImageArrays:
    # data_dir (from $CONVTUNE_DATA) is part of the key because the search looks there too
    return _LOADERS[name](None if root is None else Path(root), download, folder)


def clear_cache() -> None:
    """Forget every decoded dataset (tests; or to free memory between unrelated studies)."""
    _load_cached.cache_clear()


def default_data_dir() -> Path:
    """Where downloads go without `data.root`: `$CONVTUNE_DATA`, else `$XDG_CACHE_HOME/convtune/data`."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "convtune" / "data"


def _search_roots(root: Path | None) -> list[Path]:
    roots = [root] if root is not None else []
    if default_data_dir() not in roots:
        roots.append(default_data_dir())
    return roots


def _not_found(name: str, looked: Iterable[Path], how: str) -> DatasetNotFoundError:
    places = ", ".join(dict.fromkeys(str(p) for p in looked))
    return DatasetNotFoundError(f"{name} not found in {places}; {how}")


# ---------------------------------------------------------------------------------------------------
# digits (scikit-learn)


def _load_digits(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    pixels, target = _digits_arrays()
    scaled = np.rint(pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(target.astype(np.int64))
    return _with_holdout(torch.from_numpy(scaled), labels, [str(i) for i in range(10)])


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (pixels 0..16 (N, 64), targets (N,)).

    Reads the CSV that `sklearn.datasets.load_digits` reads, without importing scikit-learn
    (about 2.5 s per process); falls back to `load_digits` if the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        csv = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
            return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def _with_holdout(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], notes: tuple[str, ...] = ()
) -> ImageArrays:
    test, train = stratified_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
    return ImageArrays(images[train], labels[train], images[test], labels[test], class_names, notes=notes)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(taken, rest) index tensors: a seeded, class-stratified `fraction` of `labels` and the rest.

    Exactly round(fraction * N) indices are taken, shared among classes by largest remainder; both
    index tensors are sorted so that subsets keep the source order.
    """
    total = labels.numel()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=generator)
    shuffled = labels[order]
    by_class = order[torch.argsort(shuffled, stable=True)]  # grouped by class, shuffled within
    counts = torch.bincount(labels, minlength=int(labels.max()) + 1 if total else 0)
    quotas = _largest_remainder(counts, round(fraction * total))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(total) - starts.repeat_interleave(counts)
    take = rank < quotas.repeat_interleave(counts)
    return by_class[take].sort().values, by_class[~take].sort().values


def _largest_remainder(counts: torch.Tensor, target: int) -> torch.Tensor:
    total = int(counts.sum())
    if total == 0:
        return counts.clone()
    exact = counts.double() * (target / total)
    quotas = exact.floor().long()
    leftover = target - int(quotas.sum())
    if leftover > 0:
        quotas[torch.argsort(exact - quotas, descending=True, stable=True)[:leftover]] += 1
    return quotas


# ---------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files read with numpy)


def _load_fashion_mnist(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    return _load_idx_dataset(
        "fashion-mnist", "FashionMNIST", FASHION_CLASSES, root, download, extra=[DEBIAN_FASHION_MNIST]
    )


def _load_mnist(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    return _load_idx_dataset("mnist", "MNIST", [str(i) for i in range(10)], root, download, extra=[])


def _load_idx_dataset(
    name: str, folder: str, classes: list[str], root: Path | None, download: bool, extra: list[Path]
) -> ImageArrays:
    candidates = [d for base in _search_roots(root) for d in (base, base / folder / "raw")] + extra
    found = next((d for d in candidates if _has_idx_files(d)), None)
    if found is None and download:
        found = _download_torchvision(folder, root)
    if found is None:
        raise _not_found(name, candidates, _idx_hint(name))
    arrays = {key: _read_idx(_idx_path(found, stem)) for key, stem in _IDX_FILES.items()}
    return ImageArrays(
        torch.from_numpy(arrays["train_images"]).unsqueeze(1),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"]).unsqueeze(1),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        list(classes),
    )


def _idx_hint(name: str) -> str:
    debian = "install Debian's dataset-fashion-mnist, " if name == "fashion-mnist" else ""
    return f"{debian}set data.root, or set data.download: true when online."


def _idx_path(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _has_idx_files(directory: Path) -> bool:
    return directory.is_dir() and all(_idx_path(directory, stem) for stem in _IDX_FILES.values())


def _read_idx(path: Path | None) -> np.ndarray:
    """An IDX file (optionally gzipped) as a writable uint8 numpy array of its declared shape."""
    if path is None:
        raise FileNotFoundError("IDX file vanished while reading; fetch the dataset again.")
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file; delete it and fetch the dataset again.")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated ({data.size} bytes for shape {dims}); fetch it again.")
    return data.reshape(dims).copy()  # frombuffer is read-only; torch wants writable memory


def _download_torchvision(folder: str, root: Path | None) -> Path:
    import torchvision.datasets as tvd

    target = root if root is not None else default_data_dir()
    dataset_cls = getattr(tvd, folder)
    for train in (True, False):
        dataset_cls(str(target), train=train, download=True)
    return target / folder / "raw"


# ---------------------------------------------------------------------------------------------------
# CIFAR (torchvision)


def _load_cifar10(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    return _load_cifar("cifar10", "CIFAR10", root, download)


def _load_cifar100(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    return _load_cifar("cifar100", "CIFAR100", root, download)


def _load_cifar(name: str, cls_name: str, root: Path | None, download: bool) -> ImageArrays:
    import torchvision.datasets as tvd

    dataset_cls = getattr(tvd, cls_name)
    roots = _search_roots(root)
    found = next((r for r in roots if (r / dataset_cls.base_folder).is_dir()), None)
    if found is None and not download:
        raise _not_found(
            name, roots, "set data.root to the folder holding it, or data.download: true when online."
        )
    target = found if found is not None else roots[0]
    try:
        train = dataset_cls(str(target), train=True, download=download)
        test = dataset_cls(str(target), train=False, download=download)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        how = "it is incomplete or corrupted there; set data.download: true when online to fetch it again."
        raise _not_found(name, [target], how) from error
    return ImageArrays(
        torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous(),
        torch.as_tensor(train.targets, dtype=torch.int64),
        torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous(),
        torch.as_tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


# ---------------------------------------------------------------------------------------------------
# image folders (PIL)
#
# Files are read as users have them: palette, CMYK, 16-bit and EXIF-rotated images are converted
# (16-bit scaled, not clipped; rotated upright), files that cannot be read are skipped with a note
# (or refused with `bad_images: stop`), and mixed sizes are resized to the most common one.


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


def _load_imagefolder(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    if root is None:
        raise DatasetNotFoundError(
            "imagefolder needs data.root: a folder of class subfolders (root/cls/*.png) "
            "or of train/ val/ test/ subfolders."
        )
    if not root.is_dir():
        raise _not_found(
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
        raise _not_found(
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
    from PIL import Image

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
    from PIL import Image, ImageOps

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
    from PIL import Image

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
        return _with_holdout(images, labels, classes, notes)
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


def check_memory(needed: int, what: str) -> None:
    """A `DatasetError` when `needed` bytes of images would not fit in the memory that is free now."""
    available = available_memory()
    if available is not None and needed > 0.8 * available:
        raise DatasetError(
            f"{what} need {needed / 2**30:.1f} GiB of memory, but {available / 2**30:.1f} GiB are free; "
            "lower data.image_size or use fewer images (data.train_fraction, data.classes)."
        )


_LOADERS: dict[str, Callable[[Path | None, bool, FolderOptions], ImageArrays]] = {
    "digits": _load_digits,
    "fashion-mnist": _load_fashion_mnist,
    "mnist": _load_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "imagefolder": _load_imagefolder,
}
DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)
