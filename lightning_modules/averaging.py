"""Weight averaging (EMA, SWA) on Lightning's own `WeightAveraging` callback.

Lightning's callback keeps a `torch.optim.swa_utils.AveragedModel`, updates it after optimizer
steps and swaps the averaged weights in for validation and at the end of training. `AveragedWeights`
adds what convtune needs on top: averaging that starts after a fraction of training (validation
before that sees the raw weights, not the initial ones), EMA with a warm-up of its decay, batch-norm
statistics recomputed for SWA's averaged weights, and SWA's optional constant learning rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lightning_modules.config import WeightAveragingConfig

MultiAverage = Callable[[list[Tensor], list[Tensor], Tensor], None]


def ema_decay(decay: float, updates: int, *, warmup: bool) -> float:
    """The decay of the `updates`-th update (1-based): `decay`, or with warm-up the smaller
    (1 + n) / (10 + n), so that early averages do not remember the initial weights for long."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


def ema_update(decay: float, *, warmup: bool) -> MultiAverage:
    """An `AveragedModel` `multi_avg_fn`: averaged <- decay * averaged + (1 - decay) * current.

    Integer buffers (batch norm's `num_batches_tracked`) take the current value.
    """

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not averaged:
            return
        if not averaged[0].is_floating_point():
            for target, source in zip(averaged, current, strict=True):
                target.copy_(source)
            return
        weight = 1 - ema_decay(decay, int(num_averaged), warmup=warmup)
        for target, source in zip(averaged, current, strict=True):
            target.lerp_(source, weight)

    return update


def trainable_batch_norms(network: nn.Module) -> list[_BatchNorm]:
    """Batch-norm layers that training updates (a frozen backbone's keep their statistics)."""
    return [
        module
        for module in network.modules()
        if isinstance(module, _BatchNorm)
        and module.track_running_stats
        and all(p.requires_grad for p in module.parameters())
    ]


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, batches: Iterator[Tensor]) -> bool:
    """Recomputes the running statistics of `model`'s trainable batch norms as the plain average
    over `batches` (what `torch.optim.swa_utils.update_bn` does, leaving other layers in eval mode).
    Returns whether there was any batch norm to recompute."""
    norms = trainable_batch_norms(model)
    if not norms:
        return False
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all batches
        norm.train()
    try:
        for images in batches:
            model(images)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
            norm.eval()
    return True


class AveragedWeights(WeightAveraging):
    """EMA or SWA of the LightningModule's weights per `WeightAveragingConfig`.

    `averaged_epochs`: the epochs whose validation saw the averaged weights (before `start`, the raw
    weights are validated). `raw_final_state`: the LightningModule's raw weights at the end of
    training, before the averaged ones replace them (None without any update), so that what the
    averaging added can be measured.
    """

    def __init__(self, config: WeightAveragingConfig) -> None:
        if config.kind == "none":
            raise ValueError("AveragedWeights needs kind 'ema' or 'swa', but got kind='none'.")
        options: dict[str, Any] = {"use_buffers": config.kind == "ema"}
        if config.kind == "ema":
            options["multi_avg_fn"] = ema_update(config.decay, warmup=config.warmup)
        super().__init__(**options)
        self.config = config
        self.first_step = 0
        self.averaged_epochs: set[int] = set()
        self._swapped = False
        self._norms_at = -1  # n_averaged when batch norms were last recomputed
        self._lr_scales: list[float] = []
        self.raw_final_state: dict[str, Tensor] | None = None

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.first_step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_step = self._start_step(int(trainer.estimated_stepping_batches))
        groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
        base = [float(group.get("initial_lr", group["lr"])) for group in groups]
        self._lr_scales = [lr / max(base) for lr in base] if base and max(base) > 0 else []

    def replan(self, total_steps: int, steps_done: int) -> None:
        """Training now ends after `total_steps` instead (a deadline shortened it): averaging that has
        not started yet starts at `start` of the new length, or now if that is already past, so that a
        shortened run still averages its last part instead of starting late or never."""
        if self.updates > 0:
            return
        self.first_step = max(self._start_step(total_steps), steps_done)

    def _start_step(self, total_steps: int) -> int:
        """The step averaging starts at: `start` of `total_steps`, and never past the last step."""
        return min(int(self.config.start_fraction * total_steps), max(total_steps - 1, 0))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._hold_lr(trainer)

    def _hold_lr(self, trainer: pl.Trainer) -> None:
        """SWA's constant learning rate, set again wherever the scheduler may have stepped."""
        if self.config.lr is None or trainer.global_step < self.first_step:
            return
        for group, scale in zip(trainer.optimizers[0].param_groups, self._lr_scales, strict=False):
            group["lr"] = self.config.lr * scale

    @property
    def updates(self) -> int:
        """How many updates the average holds (0 before averaging starts)."""
        return 0 if self._average_model is None else int(self._average_model.n_averaged)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._hold_lr(trainer)  # an epoch-interval scheduler stepped after the last batch
        self._swapped = self.updates > 0
        if not self._swapped:
            return
        self._swap_models(pl_module)
        if self.config.kind == "swa" and self._norms_at != self.updates:
            recompute_batch_norm(pl_module, _training_images(trainer, pl_module.device))
            self._norms_at = self.updates
        if not trainer.sanity_checking:
            self.averaged_epochs.add(trainer.current_epoch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.updates > 0:
            self.raw_final_state = {
                name: tensor.detach().to("cpu", copy=True) for name, tensor in pl_module.state_dict().items()
            }
            super().on_train_end(trainer, pl_module)


def _training_images(trainer: pl.Trainer, device: torch.device) -> Iterator[Tensor]:
    """The training split's images without augmentation, in batches (or the training loader's)."""
    datamodule = getattr(trainer, "datamodule", None)
    images = getattr(datamodule, "train_images", None)
    if images is None:
        for batch in trainer.train_dataloader:  # type: ignore[union-attr]
            yield (batch[0] if isinstance(batch, (tuple, list)) else batch).to(device)
        return
    size = int(getattr(datamodule, "eval_batch_size", 256))
    for start in range(0, len(images), size):
        yield images[start : start + size].to(device)


def averaging_callbacks(config: WeightAveragingConfig) -> list[pl.Callback]:
    """`[AveragedWeights(config)]`, or nothing for `kind: none`."""
    return [] if config.kind == "none" else [AveragedWeights(config)]
