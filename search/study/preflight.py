"""Every check of an experiment that needs its data: augmentations, the dataset, the architectures.

`convtune check` runs `preflight` alone and `convtune tune` runs it before the study. Nothing here
imports Lightning or MLflow: the data is split by `ImageSplits`, which a trial's `ImageDataModule`
reuses in the same process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightning_modules.augment import AugmentationError, validate_augmentation
from lightning_modules.batch_augment import batched_entries
from lightning_modules.data import DatasetError, DatasetNotFoundError
from lightning_modules.data.splits import load_splits
from lightning_modules.tta_config import check_image_size
from search.errors import ConfigError
from search.experiment.dotted import config_from_params
from search.experiment.spec import ExperimentSpec
from search.study.budget_fit import BudgetFit, space_fit
from search.study.feasibility import SpaceFeasibility, check_space
from search.study.weights import check_weights

__all__ = ["Preflight", "augmentation_variants", "preflight"]


@dataclass
class Preflight:
    """What the checks found: the data's shape and how much of the space is feasible."""

    in_channels: int
    image_size: tuple[int, int]
    num_classes: int
    train_size: int
    val_size: int
    feasibility: SpaceFeasibility
    notes: list[str] = field(default_factory=list)  # what loading the data decided (files skipped, ...)
    budget: BudgetFit | None = None  # how much of the space fits search.constraints (None without)


def augmentation_variants(spec: ExperimentSpec) -> list[list[dict[str, Any]]]:
    """The base pipeline, and one pipeline per value the space can give an augmentation argument."""
    variants = [spec.augment]
    for key, param in spec.search.space.items():
        if not key.startswith("augment."):
            continue
        for value in param.candidates():
            variants.append(config_from_params(spec, {key: value}).augment)
    return variants


def fixed_notes(spec: ExperimentSpec) -> list[str]:
    """One note per searched key that `--set` fixed (and so took out of the search space)."""
    return [
        f"--set fixes {key}, which the experiment file searches: it is no longer searched."
        for key in spec.fixed_by_set
    ]


def preflight(spec: ExperimentSpec) -> Preflight:
    """Validates what pydantic cannot: augmentations, the dataset's presence, the architectures."""
    for augment in augmentation_variants(spec):
        problems = validate_augmentation(augment)
        if problems:
            raise ConfigError("; ".join(problems))  # each names its entry: augment[0]: ...
        try:
            batched_entries(augment, spec.data.augment_backend)
        except AugmentationError as error:
            raise ConfigError(str(error)) from None
    config = spec.run_config()
    try:
        datamodule = load_splits(config.data, config.augment, seed=config.seed)
    except (DatasetNotFoundError, DatasetError) as error:
        raise ConfigError(str(error)) from None
    try:
        check_image_size(spec.evaluate.tta, datamodule.image_size)
    except ValueError as error:
        raise ConfigError(f"evaluate.{error}") from None
    feasibility = check_space(spec, datamodule.in_channels, datamodule.image_size)
    check_weights(
        spec,
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
        image_size=datamodule.image_size,
    )
    return Preflight(
        datamodule.in_channels,
        datamodule.image_size,
        datamodule.num_classes,
        len(datamodule.train_labels),
        len(datamodule.val_labels),
        feasibility,
        [*fixed_notes(spec), *datamodule.notes],
        space_fit(spec, (datamodule.in_channels, datamodule.image_size, datamodule.num_classes)),
    )
