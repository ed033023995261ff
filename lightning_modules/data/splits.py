"""`ImageSplits`: train/val/test splits of an in-memory dataset, as uint8 batches, without Lightning.

Batches are (uint8 images (N, C, H, W), int64 labels (N,)); the LightningModule normalizes them on
the device with `mean`/`std` from here. The test split feeds `test_dataloader()` only. After
`distill`, training batches carry soft targets (N, classes) in place of the labels.
`lightning_modules.data.datamodule.ImageDataModule` is the same class as a `LightningDataModule`;
checks that only need the data's shape and sizes (`convtune check`) use `load_splits` and so import
no Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lightning_modules.augment import build_augmentation
from lightning_modules.batch_augment import augmentation_for_backend
from lightning_modules.config import DataConfig
from lightning_modules.data.arrays import DatasetError, ImageArrays, check_memory, stratified_split
from lightning_modules.data.loaders import InMemoryLoader, build_augmented_loader
from lightning_modules.data.pixels import channel_stats, resize_images
from lightning_modules.data.sources import load_dataset
from lightning_modules.distillation import soft_targets

_LOADER_FIELDS = {"batch_size", "eval_batch_size", "num_workers"}  # do not change the splits
# the last setup's splits and statistics: the trials of a study share them instead of re-splitting and
# re-measuring the same data every trial (Fashion-MNIST: 4.6 s per trial at load 9.6 on 2 cores)
_last_setup: dict[str, Any] = {}


def clear_setup_cache() -> None:
    """Forget the last setup's splits and statistics (a process that is done with the data)."""
    _last_setup.clear()


class ImageSplits:
    """Train, a seeded validation split carved from train, and test, all held as uint8 tensors.

    `augment` entries (`[{HorizontalFlip: {p: 0.5}}]`) are checked here, at construction; they apply
    to training batches only. `device` optionally holds the plain (unaugmented) loaders' tensors on
    that device, moved once.
    """

    def __init__(
        self,
        data: DataConfig,
        augment: Sequence[Mapping[str, Mapping[str, Any] | None]] = (),
        seed: int = 0,
        *,
        train_seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()  # the LightningDataModule's, in ImageDataModule
        if not isinstance(data, DataConfig):
            raise TypeError(
                f"data must be a DataConfig, but got {type(data).__name__}; use DataConfig(**values)."
            )
        self.data = data
        self.augment = [dict(entry) for entry in augment]
        self.seed = int(seed)  # the splits
        self.train_seed = self.seed if train_seed is None else int(train_seed)  # batch order, augmentation
        self.loader_device = device
        self.transform = build_augmentation(self.augment, seed=self.train_seed)
        self.batched = augmentation_for_backend(self.transform, data.augment_backend)
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._class_names: list[str] = []
        self._mean: list[float] = []
        self._std: list[float] = []
        self._notes: list[str] = []
        self._train_targets: torch.Tensor | None = None  # soft targets, after `distill`

    # ------------------------------------------------------------------------------------------------
    # setup

    def setup(self, stage: str | None = None) -> None:
        """Load, filter, split and resize once; later calls do nothing."""
        if self._splits is not None:
            return
        data = self.data
        arrays = load_dataset(data.dataset, data.root, data.download, data.image_size, data.bad_images)
        self._notes = list(arrays.notes)
        key = (self.data.model_dump_json(exclude=_LOADER_FIELDS), self.seed)
        cached = _last_setup.get("entry")
        if cached is not None and cached[0] is arrays and cached[1] == key:
            splits, class_names, mean, std = cached[2]
        else:
            splits, class_names = self._select_classes(arrays)
            splits = self._split_train(splits)
            splits = {name: self._resize(images, labels) for name, (images, labels) in splits.items()}
            mean, std = channel_stats(splits["train"][0])
            _last_setup["entry"] = (arrays, key, (splits, class_names, mean, std))
        self._mean, self._std = list(mean), list(std)
        self._class_names = list(class_names)
        self._splits = dict(splits)
        if self.transform is not None:
            self._check_augmentation(splits["train"])

    def distill(self, probabilities: torch.Tensor, weight: float) -> None:
        """Train on soft targets from now on: each training image's label blended with a teacher's
        class `probabilities` (N, classes), in the train split's order (see
        `lightning_modules.distillation`). Validation and test keep their labels."""
        labels = self.train_labels
        if probabilities.ndim == 2 and probabilities.shape[1] != self.num_classes:
            raise ValueError(
                f"the teacher predicts {probabilities.shape[1]} classes but the data has "
                f"{self.num_classes}; use a teacher trained on the same classes."
            )
        self._train_targets = soft_targets(labels, probabilities, weight)

    @property
    def distilled(self) -> bool:
        return self._train_targets is not None

    def _select_classes(
        self, arrays: ImageArrays
    ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
        splits = {
            "train": (arrays.train_images, arrays.train_labels),
            "test": (arrays.test_images, arrays.test_labels),
        }
        if arrays.val_images is not None and arrays.val_labels is not None:
            splits["given_val"] = (arrays.val_images, arrays.val_labels)
        classes = self.data.classes
        if classes is None:
            return splits, list(arrays.class_names)
        _check_classes(classes, arrays.num_classes, self.data.dataset)
        lookup = torch.full((arrays.num_classes,), -1, dtype=torch.int64)
        lookup[torch.tensor(classes)] = torch.arange(len(classes))
        kept = {name: _keep_classes(images, labels, lookup) for name, (images, labels) in splits.items()}
        return kept, [arrays.class_names[c] for c in classes]

    def _split_train(
        self, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        images, labels = splits["train"]
        if "given_val" in splits:
            val_images, val_labels = splits.pop("given_val")
        else:
            val_index, train_index = stratified_split(labels, self.data.val_fraction, self.seed)
            _check_not_empty(val_index, "val_fraction", self.data.val_fraction, len(labels))
            val_images, val_labels = images[val_index], labels[val_index]
            images, labels = images[train_index], labels[train_index]
        if self.data.train_fraction < 1:
            kept, _ = stratified_split(labels, self.data.train_fraction, self.seed + 1)
            _check_not_empty(kept, "train_fraction", self.data.train_fraction, len(labels))
            images, labels = images[kept], labels[kept]
        if len(labels) == 0:
            raise DatasetError(f"the train split of {self.data.dataset} is empty; lower data.val_fraction.")
        return {"train": (images, labels), "val": (val_images, val_labels), "test": splits["test"]}

    def _resize(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.data.image_size
        if size is None or tuple(images.shape[2:]) == (size, size):
            return images, labels
        check_memory(
            images.shape[0] * images.shape[1] * size * size,
            f"data.image_size={size}: {images.shape[0]} images of {size}x{size}",
        )
        return resize_images(images, (size, size)), labels

    def _check_augmentation(self, train: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Run the pipeline once on a training image, so a shape-changing one fails before training."""
        sample = train[0][0].permute(1, 2, 0).contiguous().numpy()
        out = self.transform(image=sample)["image"]  # type: ignore[misc]
        shape = out.shape if out.ndim == 3 else (*out.shape, 1)
        if tuple(shape) != sample.shape or out.dtype != sample.dtype:
            raise DatasetError(
                f"augment turns a {sample.shape} uint8 image (H, W, C) into {tuple(shape)} {out.dtype}; "
                "use transforms that keep the image size and dtype, and set data.image_size to resize."
            )

    # ------------------------------------------------------------------------------------------------
    # loaders

    def train_dataloader(self) -> InMemoryLoader | torch.utils.data.DataLoader:
        images, labels = self._split("train")
        if self._train_targets is not None:
            labels = self._train_targets
        batch_size = self.data.batch_size
        # a lone last sample breaks BatchNorm in training
        drop_last = len(labels) > 1 and len(labels) % batch_size == 1
        if self.transform is None or self.batched is not None:
            return InMemoryLoader(
                images, labels, batch_size, shuffle=True, drop_last=drop_last, seed=self.train_seed,
                device=self.loader_device, augment=self.batched,
            )  # fmt: skip
        return build_augmented_loader(
            images, labels, self.transform, batch_size, shuffle=True, drop_last=drop_last,
            seed=self.train_seed, num_workers=self.data.num_workers,
        )  # fmt: skip

    def val_dataloader(self) -> InMemoryLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> InMemoryLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> InMemoryLoader:
        images, labels = self._split(split)
        return InMemoryLoader(images, labels, self.eval_batch_size, device=self.loader_device)

    def _split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self._splits is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for the {name} split.")
        return self._splits[name]

    # ------------------------------------------------------------------------------------------------
    # what the model and the pictures need

    @property
    def notes(self) -> list[str]:
        """What loading decided for the user: image files skipped, a common size picked."""
        return list(self._notes)

    @property
    def eval_batch_size(self) -> int:
        return self.data.eval_batch_size or 2 * self.data.batch_size

    @property
    def num_classes(self) -> int:
        self._split("train")
        return len(self._class_names)

    @property
    def class_names(self) -> list[str]:
        self._split("train")
        return list(self._class_names)

    @property
    def in_channels(self) -> int:
        return int(self._split("train")[0].shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        images = self._split("train")[0]
        return int(images.shape[2]), int(images.shape[3])

    @property
    def mean(self) -> list[float]:
        self._split("train")
        return list(self._mean)

    @property
    def std(self) -> list[float]:
        self._split("train")
        return list(self._std)

    @property
    def train_images(self) -> torch.Tensor:
        return self._split("train")[0]

    @property
    def train_labels(self) -> torch.Tensor:
        return self._split("train")[1]

    @property
    def val_images(self) -> torch.Tensor:
        return self._split("val")[0]

    @property
    def val_labels(self) -> torch.Tensor:
        return self._split("val")[1]

    @property
    def test_images(self) -> torch.Tensor:
        """The held-out test split: read only by `reproduce` and `evaluate`, never by the search."""
        return self._split("test")[0]

    @property
    def test_labels(self) -> torch.Tensor:
        return self._split("test")[1]

    @property
    def sizes(self) -> dict[str, int]:
        """Number of images per split: {'train': ..., 'val': ..., 'test': ...}."""
        self._split("train")
        assert self._splits is not None
        return {name: int(labels.shape[0]) for name, (_, labels) in self._splits.items()}


def _check_classes(classes: list[int], num_classes: int, dataset: str) -> None:
    if len(set(classes)) != len(classes):
        raise DatasetError(f"data.classes lists a class twice ({classes}); list each class id once.")
    if len(classes) < 2:
        raise DatasetError(f"data.classes must keep at least 2 classes, but got {classes}.")
    out_of_range = [c for c in classes if c >= num_classes]
    if out_of_range:
        raise DatasetError(
            f"data.classes has ids {out_of_range} but {dataset} has classes 0..{num_classes - 1}; "
            "use ids in that range."
        )


def _keep_classes(
    images: torch.Tensor, labels: torch.Tensor, lookup: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    new_labels = lookup[labels]
    keep = new_labels >= 0
    return images[keep], new_labels[keep]


def _check_not_empty(index: torch.Tensor, field: str, value: float, total: int) -> None:
    if index.numel() == 0:
        raise DatasetError(f"data.{field}={value} of {total} images selects none; raise data.{field}.")


def load_splits(
    data: DataConfig,
    augment: Sequence[Mapping[str, Mapping[str, Any] | None]] = (),
    seed: int = 0,
) -> ImageSplits:
    """The data decoded (once per process), split and checked against `augment`: what the preflight
    reads (shapes, sizes, notes). A later `ImageDataModule` of the same data reuses its splits."""
    splits = ImageSplits(data, augment, seed=seed)
    splits.setup()
    return splits
