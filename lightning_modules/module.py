"""`ClassifierModule`: one `model_step` shared by train, validation and test."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor, nn

from lightning_modules.config import OptimConfig
from lightning_modules.models.freezing import apply_freeze, set_frozen_bn_eval, unfreeze_all
from lightning_modules.tta import average_views

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


class NonFiniteLossError(FloatingPointError):
    """Training diverged: the loss became NaN or infinite."""


class ClassifierModule(pl.LightningModule):
    """Trains any image classifier on uint8 batches, normalizing on the device.

    Metrics, logged once per epoch: `train/loss`, `val/loss`, `val/acc`, `lr`, `throughput/img_s`
    (and `test/loss`, `test/acc` when tested). With `val_tta` (transform names, see
    `lightning_modules.tta`), validation averages the logits over each image and its transforms.
    Training targets are class ids, or class probabilities (soft targets from a teacher, see
    `lightning_modules.distillation`): the same cross-entropy takes either.
    """

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig,
        *,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        channels_last: bool = True,
        freeze: str = "none",
        unfreeze_after: int | None = None,
        val_tta: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have one value per channel, but got {mean} and {std}.")
        self.model = model
        self.optim = optim
        self.num_classes = num_classes
        self.channels_last = channels_last
        self.unfreeze_after = unfreeze_after
        self.val_tta = list(val_tta)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("inv_std", 1 / (torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255))
        apply_freeze(model, freeze)
        self._epoch_started = 0.0
        self._epoch_images = 0
        self._loss_sum = torch.zeros(())
        self._val_outputs: list[tuple[Tensor, Tensor]] = []

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 NCHW images to normalized float input, in the layout the model runs fastest in."""
        x = (images.to(self.mean.dtype) - self.mean) * self.inv_std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def black(self) -> Tensor:
        """The normalized value of a 0 pixel: what a test-time shift fills uncovered pixels with."""
        return -self.mean * self.inv_std

    def forward(self, images: Tensor) -> Tensor:
        return self.model(self.prepare(images))

    def model_step(
        self, batch: tuple[Tensor, Tensor], tta: Sequence[str] = ()
    ) -> tuple[Tensor, Tensor, Tensor]:
        images, targets = batch
        logits = average_views(self.model, self.prepare(images), tta, self.black) if tta else self(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.optim.label_smoothing)
        return loss, logits, targets

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, _, targets = self.model_step(batch)
        self._epoch_images += targets.shape[0]
        self._loss_sum = self._loss_sum.to(loss.device) + loss.detach()
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=targets.shape[0])
        if self.optim.l1 > 0:
            loss = loss + self.optim.l1 * sum(p.abs().sum() for p in self._weights())
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=1)

    def _evaluate(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        loss, logits, targets = self.model_step(batch, self.val_tta if split == "val" else ())
        confidence, predicted = logits.detach().float().softmax(dim=1).max(dim=1)
        accuracy = (predicted == targets).float().mean()
        if split == "val":
            self._val_outputs.append((predicted, confidence))
        size = targets.shape[0]
        self.log(f"{split}/loss", loss, on_epoch=True, batch_size=size, prog_bar=split == "val")
        self.log(f"{split}/acc", accuracy, on_epoch=True, batch_size=size, prog_bar=split == "val")

    def on_train_epoch_start(self) -> None:
        if self.unfreeze_after is not None and self.current_epoch == self.unfreeze_after:
            unfreeze_all(self.model)
        set_frozen_bn_eval(self.model)
        self._epoch_images = 0
        self._loss_sum = torch.zeros((), device=self.device)
        self._epoch_started = time.perf_counter()

    def val_predictions(self) -> tuple[Tensor, Tensor] | None:
        """This validation epoch's predicted classes and their probabilities, in loader order."""
        if not self._val_outputs:
            return None
        predicted, confidence = zip(*self._val_outputs, strict=True)
        return torch.cat(predicted), torch.cat(confidence)

    def on_validation_epoch_start(self) -> None:
        """Closes the training epoch's books here, so every callback sees them at epoch end."""
        self._val_outputs = []
        if self.trainer.sanity_checking or self.trainer.state.fn != TrainerFn.FITTING:
            return
        elapsed = max(time.perf_counter() - self._epoch_started, 1e-9)
        if not math.isfinite(float(self._loss_sum)):
            raise NonFiniteLossError(
                f"training loss became {float(self._loss_sum)} in epoch {self.current_epoch}; "
                "lower optim.lr, add gradient clipping (trainer.gradient_clip_val) or use batch_norm."
            )
        self.log("throughput/img_s", self._epoch_images / elapsed)
        self.log("lr", self.trainer.optimizers[0].param_groups[-1]["lr"])

    def _weights(self) -> list[Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad and p.ndim > 1]

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Weight decay on weights only (not biases or norms); the backbone at its own learning rate."""
        backbone = getattr(self.model, "backbone", None)
        scale = self.optim.backbone_lr_scale
        backbone_ids = (
            {id(p) for p in backbone.parameters()} if backbone is not None and scale != 1 else set()
        )
        groups: dict[tuple[bool, bool], list[Tensor]] = {}
        for parameter in self.model.parameters():
            key = (id(parameter) in backbone_ids, parameter.ndim > 1)
            groups.setdefault(key, []).append(parameter)
        return [
            {
                "params": params,
                "lr": self.optim.lr * (scale if in_backbone else 1.0),
                "weight_decay": self.optim.weight_decay if decayed else 0.0,
            }
            for (in_backbone, decayed), params in sorted(groups.items())
        ]

    def configure_optimizers(self) -> Any:
        optimizer = self._make_optimizer()
        scheduler = self._make_scheduler(optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        kwargs: dict[str, Any] = {"lr": self.optim.lr}
        if self.optim.name == "sgd":
            kwargs |= {"momentum": self.optim.momentum, "nesterov": self.optim.nesterov}
        elif self.optim.name == "rmsprop":
            kwargs["momentum"] = self.optim.momentum
        return OPTIMIZERS[self.optim.name](self.parameter_groups(), **kwargs)

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        name = self.optim.scheduler
        if name == "none":
            return None
        if name == "onecycle":
            total = int(self.trainer.estimated_stepping_batches)
            max_lr = [group["lr"] for group in optimizer.param_groups]
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total)
            return {"scheduler": schedule, "interval": "step"}
        if name == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        else:
            schedule = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=self.optim.step_size, gamma=self.optim.gamma
            )
        return {"scheduler": schedule, "interval": "epoch"}
