"""Image datasets decoded once per process into uint8 tensors: `load_dataset` and the built-in sources
(scikit-learn's digits, MNIST and Fashion-MNIST from IDX files, CIFAR through torchvision; image
folders in `lightning_modules.data.imagefolder`).

`load_dataset(name, root, download)` returns an `ImageArrays` whose tensors are cached for the life
of the process: several trials in one worker share them and never decode twice. The cached tensors
are shared, so callers must never modify them in place (index them, which copies).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lightning_modules.data.arrays import ImageArrays, not_found, with_holdout
from lightning_modules.data.imagefolder import FolderOptions, load_imagefolder

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "CONVTUNE_DATA"
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


# ---------------------------------------------------------------------------------------------------
# entry point


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


# ---------------------------------------------------------------------------------------------------
# digits (scikit-learn)


def _load_digits(root: Path | None, download: bool, folder: FolderOptions) -> ImageArrays:
    pixels, target = _digits_arrays()
    scaled = np.rint(pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(target.astype(np.int64))
    return with_holdout(torch.from_numpy(scaled), labels, [str(i) for i in range(10)])


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
    from sklearn.datasets import load_digits  # lazy: scikit-learn costs ~2.5 s; only a fallback

    bunch = load_digits()
    return bunch.data, bunch.target


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
        raise not_found(name, candidates, _idx_hint(name))
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
    import torchvision.datasets as tvd  # lazy: torchvision (~1 s) only to download or read CIFAR

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
    import torchvision.datasets as tvd  # lazy: torchvision (~1 s) only to download or read CIFAR

    dataset_cls = getattr(tvd, cls_name)
    roots = _search_roots(root)
    found = next((r for r in roots if (r / dataset_cls.base_folder).is_dir()), None)
    if found is None and not download:
        raise not_found(
            name, roots, "set data.root to the folder holding it, or data.download: true when online."
        )
    target = found if found is not None else roots[0]
    try:
        train = dataset_cls(str(target), train=True, download=download)
        test = dataset_cls(str(target), train=False, download=download)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        how = "it is incomplete or corrupted there; set data.download: true when online to fetch it again."
        raise not_found(name, [target], how) from error
    return ImageArrays(
        torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous(),
        torch.as_tensor(train.targets, dtype=torch.int64),
        torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous(),
        torch.as_tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


_LOADERS: dict[str, Callable[[Path | None, bool, FolderOptions], ImageArrays]] = {
    "digits": _load_digits,
    "fashion-mnist": _load_fashion_mnist,
    "mnist": _load_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "imagefolder": load_imagefolder,
}
DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)
