"""`ImageSplits` (and so `ImageDataModule`): seeded disjoint splits, class selection, statistics,
augmentation checked early, and one prepared split shared by the trials of a study."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.augment import AugmentationError
from lightning_modules.config import DataConfig
from lightning_modules.data import ImageArrays, ImageDataModule, build_augmented_loader, load_dataset
from lightning_modules.data import splits as splits_module
from lightning_modules.data.splits import clear_setup_cache, load_splits

FLIP = [{"HorizontalFlip": {"p": 0.5}}]


def _id_images(ids: torch.Tensor) -> torch.Tensor:
    images = torch.zeros(len(ids), 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = (ids // 256).to(torch.uint8)
    images[:, 0, 0, 1] = (ids % 256).to(torch.uint8)
    return images


def _ids(images: torch.Tensor) -> set[int]:
    return set((images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()).tolist())


@pytest.fixture
def synthetic(monkeypatch: pytest.MonkeyPatch) -> ImageArrays:
    train_ids, test_ids = torch.arange(1000), torch.arange(1000, 1200)
    arrays = ImageArrays(
        _id_images(train_ids), train_ids % 5, _id_images(test_ids), test_ids % 5, list("abcde")
    )
    monkeypatch.setattr(splits_module, "load_dataset", lambda *args: arrays)  # ImageSplits.setup reads it
    return arrays


def _module(seed: int = 0, augment: list | tuple = (), **data: object) -> ImageDataModule:
    module = ImageDataModule(
        DataConfig(**{"val_fraction": 0.2, "batch_size": 64, **data}), augment, seed=seed
    )
    module.setup()
    return module


def test_split_sizes_disjoint_and_test_kept_apart(synthetic: ImageArrays) -> None:
    module = _module()
    assert module.sizes == {"train": 800, "val": 200, "test": 200}
    train, val = _ids(module.train_images), _ids(module.val_images)
    assert not train & val and train | val == set(range(1000))
    test = set()
    for images, labels in module.test_dataloader():
        test |= _ids(images)
        assert labels.dtype == torch.int64
    assert test == set(range(1000, 1200))
    seen = set()
    for images, _ in module.train_dataloader():
        seen |= _ids(images)
    assert seen == train
    assert torch.bincount(module.val_labels).tolist() == [40] * 5


def test_seeded_split_is_deterministic(synthetic: ImageArrays) -> None:
    first, again, other = _module(seed=0), _module(seed=0), _module(seed=1)
    assert torch.equal(first.val_images, again.val_images) and torch.equal(first.val_labels, again.val_labels)
    assert _ids(first.val_images) != _ids(other.val_images)


def test_train_fraction_keeps_stratified_subset_of_train_only(synthetic: ImageArrays) -> None:
    full, few = _module(), _module(train_fraction=0.1)
    assert few.sizes == {"train": 80, "val": 200, "test": 200}
    assert torch.bincount(few.train_labels).tolist() == [16] * 5
    assert _ids(few.train_images) <= _ids(full.train_images) and torch.equal(few.val_images, full.val_images)


def test_classes_keeps_and_relabels(synthetic: ImageArrays) -> None:
    module = _module(classes=[3, 1])
    assert module.class_names == ["d", "b"] and module.num_classes == 2
    assert module.sizes == {"train": 320, "val": 80, "test": 80}
    assert {i % 5 for i in _ids(module.train_images)} == {1, 3}
    kept = module.train_images[module.train_labels == 0]
    assert {i % 5 for i in _ids(kept)} == {3}
    with pytest.raises(ValueError, match=r"data.classes has ids \[7\]"):
        _module(classes=[1, 7])


def test_setup_is_idempotent_and_properties_need_it(synthetic: ImageArrays) -> None:
    module = ImageDataModule(DataConfig(batch_size=32))
    with pytest.raises(RuntimeError, match="setup"):
        _ = module.num_classes
    module.setup("fit")
    train = module.train_images
    module.setup("test")
    assert module.train_images is train
    assert module.eval_batch_size == 64 and module.in_channels == 1 and module.image_size == (4, 4)


def test_digits_stats_resize_and_batches() -> None:
    module = ImageDataModule(DataConfig(dataset="digits", image_size=16, batch_size=100, eval_batch_size=500))
    module.setup()
    assert module.image_size == (16, 16) and module.train_images.dtype == torch.uint8
    expected = module.train_images.double() / 255
    assert module.mean == pytest.approx([expected.mean().item()])
    assert module.std == pytest.approx([expected.std(unbiased=False).item()])
    images, labels = next(iter(module.val_dataloader()))
    assert images.shape == (144, 1, 16, 16) and images.dtype == torch.uint8 and labels.dtype == torch.int64


def test_augmented_loader_batches_and_seeds() -> None:
    arrays = load_dataset("digits")
    module = _module(augment=[*FLIP, {"Affine": {"translate_percent": [-0.1, 0.1], "p": 0.5}}], num_workers=0)
    loader = module.train_dataloader()
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 8, 8) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    first, again, other = (
        next(iter(_module(seed, FLIP, num_workers=0).train_dataloader()))[0] for seed in (0, 0, 1)
    )
    assert torch.equal(first, again) and not torch.equal(first, other)

    def worker_batch(seed: int) -> torch.Tensor:
        source = arrays.train_images[:64], arrays.train_labels[:64]
        loader = build_augmented_loader(
            *source, module.transform, 64, shuffle=False, seed=seed, num_workers=1
        )
        return next(iter(loader))[0]

    first, again, other = worker_batch(0), worker_batch(0), worker_batch(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first, arrays.train_images[:64])  # augmented


def test_augmentation_checked_early() -> None:
    with pytest.raises(AugmentationError, match="HorizontalFlip"):
        ImageDataModule(DataConfig(), [{"HorizontalFlp": {}}])
    module = ImageDataModule(DataConfig(), [{"RandomCrop": {"height": 4, "width": 4, "p": 1.0}}])
    with pytest.raises(ValueError, match="keep the image size"):
        module.setup()


def _setup(**data: object) -> ImageDataModule:
    module = ImageDataModule(DataConfig(dataset="digits", **data))  # type: ignore[arg-type]
    module.setup()
    return module


def test_same_data_shares_the_split_and_statistics() -> None:
    first, second = _setup(val_fraction=0.2), _setup(val_fraction=0.2, batch_size=7, num_workers=0)
    assert second.val_images is first.val_images  # the loader-only fields do not re-split
    assert second.mean == first.mean and second.std == first.std
    assert second.sizes == first.sizes


def test_other_split_settings_prepare_their_own_split() -> None:
    base = _setup(val_fraction=0.2)
    other_fraction = _setup(val_fraction=0.3)
    assert other_fraction.sizes["val"] != base.sizes["val"]
    reseeded = ImageDataModule(DataConfig(dataset="digits", val_fraction=0.2), seed=1)
    reseeded.setup()
    assert not torch.equal(reseeded.val_labels, _setup(val_fraction=0.2).val_labels)


def test_clearing_the_setup_cache_prepares_the_split_again() -> None:
    first = _setup(val_fraction=0.2)
    clear_setup_cache()
    again = _setup(val_fraction=0.2)
    assert again.val_images is not first.val_images
    assert torch.equal(again.val_images, first.val_images)  # the same seeded split, prepared anew


def test_load_splits_reads_the_shapes_a_check_needs() -> None:
    splits = load_splits(DataConfig(dataset="digits", val_fraction=0.25, image_size=12), seed=3)
    assert (splits.in_channels, splits.image_size, splits.num_classes) == (1, (12, 12), 10)
    assert splits.sizes["val"] == round(0.25 * 1438) and not isinstance(splits, ImageDataModule)


def _teacher_rows(ids: torch.Tensor) -> torch.Tensor:
    """A made-up teacher: all its probability on class (id + 1) % 5, so each row names its image."""
    return torch.nn.functional.one_hot((ids + 1) % 5, 5).float()


@pytest.mark.parametrize("augment", [(), FLIP], ids=["plain", "batched-flip"])
def test_distill_feeds_each_training_image_its_own_soft_target(synthetic: ImageArrays, augment: list) -> None:
    module = _module(augment=augment)
    ids = torch.tensor(sorted(_ids(module.train_images)))
    order = module.train_images[:, 0, 0, 0].long() * 256 + module.train_images[:, 0, 0, 1].long()
    module.distill(_teacher_rows(order), 0.25)
    assert module.distilled
    seen = 0
    for images, targets in module.train_dataloader():
        batch_ids = images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()
        if augment:  # a flipped image carries its id at the other end of its first row
            flipped = images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long() == 0
            batch_ids = torch.where(
                flipped, images[:, 0, 0, 3].long() * 256 + images[:, 0, 0, 2].long(), batch_ids
            )
        expected = 0.75 * torch.nn.functional.one_hot(batch_ids % 5, 5) + 0.25 * _teacher_rows(batch_ids)
        assert targets.dtype == torch.float32 and torch.allclose(targets, expected)
        seen += len(batch_ids)
    assert seen == len(ids)
    _, val_labels = next(iter(module.val_dataloader()))
    assert val_labels.dtype == torch.int64  # validation keeps its labels


def test_distill_refuses_a_teacher_of_other_classes(synthetic: ImageArrays) -> None:
    module = _module()
    with pytest.raises(ValueError, match="the teacher predicts 3 classes but the data has 5"):
        module.distill(torch.full((module.sizes["train"], 3), 1 / 3), 0.5)
