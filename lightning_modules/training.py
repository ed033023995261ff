"""From a `RunConfig` to a ready datamodule, LightningModule and Trainer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch

from lightning_modules.accelerators import wants_cuda
from lightning_modules.averaging import averaging_callbacks
from lightning_modules.config import RunConfig, TrainerConfig
from lightning_modules.data import ImageDataModule
from lightning_modules.models.registry import model_from_config
from lightning_modules.models.weights import WeightsResolver
from lightning_modules.module import ClassifierModule
from lightning_modules.precision import resolve_precision
from lightning_modules.tta_config import check_image_size


@dataclass
class RunParts:
    datamodule: ImageDataModule
    module: ClassifierModule


def build_datamodule(config: RunConfig, device: torch.device | str | None = None) -> ImageDataModule:
    """The config's data, decoded (once per process) and split; with `device`, the plain (unaugmented)
    loaders hold their tensors there, so batches are cut on the GPU with no host-to-device copies."""
    datamodule = ImageDataModule(
        config.data, config.augment, seed=config.seed, train_seed=config.training_seed, device=device
    )
    datamodule.setup()
    return datamodule


def data_device(accelerator: str, gpu_ids: Sequence[int] | None = None) -> torch.device | None:
    """Where a run's in-memory data should live: the first training GPU, or None (host memory).

    `accelerator` is the Trainer's (`cpu`, `gpu`, `cuda`, `auto`, ...); `gpu_ids` the Trainer's
    `devices` list when it names GPUs. Without a usable CUDA device the data stays on the host.
    """
    if not wants_cuda(accelerator) or not torch.cuda.is_available():
        return None
    return torch.device("cuda", gpu_ids[0] if gpu_ids else 0)


def build_module(
    config: RunConfig, datamodule: ImageDataModule, weights_resolver: WeightsResolver | None = None
) -> ClassifierModule:
    """The model of `config` (weights loaded, `freeze` applied) wrapped for training.

    `weights_resolver` turns a `model.weights` URI (`models:/...`, `runs:/...`) into a state dict.
    """
    if config.evaluate.tta:
        check_image_size(config.evaluate.tta, datamodule.image_size)
    model = model_from_config(
        config.model,
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
        image_size=datamodule.image_size,
        weights_resolver=weights_resolver,
    )
    mean, std = datamodule.mean, datamodule.std
    normalization = getattr(model, "normalization", None)
    if normalization is not None:
        mean, std = _match_channels(normalization, datamodule.in_channels)
    module = ClassifierModule(
        model,
        config.optim,
        num_classes=datamodule.num_classes,
        mean=mean,
        std=std,
        channels_last=config.trainer.channels_last,
        freeze=config.model.freeze,
        unfreeze_after=config.model.unfreeze_after,
        val_tta=config.evaluate.tta if config.evaluate.tta_in_validation else (),
    )
    if config.trainer.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def _match_channels(
    normalization: tuple[Sequence[float], Sequence[float]], channels: int
) -> tuple[list[float], list[float]]:
    """A backbone's RGB statistics applied to data with `channels` channels (grayscale: their mean)."""
    mean, std = list(normalization[0]), list(normalization[1])
    if channels == len(mean):
        return mean, std
    return [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels


def build_run(
    config: RunConfig,
    weights_resolver: WeightsResolver | None = None,
    *,
    device: torch.device | str | None = None,
) -> RunParts:
    """Seeds everything, then builds data and model; the same config always builds the same run.

    `weights_resolver` is passed to `build_module` (resolves `model.weights` URIs); `device` to
    `build_datamodule` (see `data_device`).
    """
    pl.seed_everything(config.training_seed, workers=True, verbose=False)
    datamodule = build_datamodule(config, device)
    return RunParts(datamodule, build_module(config, datamodule, weights_resolver))


def create_trainer(
    config: TrainerConfig,
    *,
    callbacks: Sequence[pl.Callback] = (),
    progress_bar: bool = False,
    root_dir: str | None = None,
    **overrides: Any,
) -> pl.Trainer:
    """A Trainer without Lightning's own logger and checkpoints: callbacks do the tracking.

    `precision: auto` is resolved for the accelerator the Trainer will use (see `resolve_precision`).
    `weight_averaging` adds its callback last, so that every other callback's validation-end hook
    (best epoch, metrics, pruning) sees the averaged weights.
    """
    accelerator = overrides.get("accelerator", config.accelerator)
    options: dict[str, Any] = {
        "max_epochs": config.max_epochs,
        "precision": resolve_precision(config.precision, accelerator),
        "accelerator": config.accelerator,
        "devices": config.devices,
        "strategy": config.strategy,
        "deterministic": config.deterministic,
        "limit_train_batches": config.limit_train_batches,
        "limit_val_batches": config.limit_val_batches,
        "gradient_clip_val": config.gradient_clip_val,
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "enable_progress_bar": progress_bar,
        "num_sanity_val_steps": 0,
        "callbacks": [*callbacks, *averaging_callbacks(config.weight_averaging)],
        "default_root_dir": root_dir,
    }
    options.update(overrides)
    return pl.Trainer(**options)
