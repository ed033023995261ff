"""Decisions taken after training, on the validation split only: test-time augmentation, ensembles.

Nothing here reads the test split; `search.reproduce.final_test` does, once the decisions are taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_modules.config import EvaluateConfig
from search.model_store import InferenceModel


def accuracy(probabilities: Tensor, labels: Tensor) -> float:
    return float((probabilities.argmax(dim=1) == labels.cpu()).float().mean()) if len(labels) else 0.0


def mean_nll(probabilities: Tensor, labels: Tensor) -> float:
    """Negative log-likelihood of the true classes (the tie-break between equal accuracies)."""
    picked = probabilities[torch.arange(len(labels)), labels.cpu().long()]
    return float(-picked.clamp_min(1e-12).log().mean()) if len(labels) else 0.0


@dataclass(frozen=True)
class TTAChoice:
    """Whether test-time augmentation is kept, and the validation accuracies that decided it."""

    model: InferenceModel
    transforms: list[str]
    kept: bool
    plain_accuracy: float
    tta_accuracy: float | None  # None when no transforms were configured

    def metrics(self) -> dict[str, float]:
        if self.tta_accuracy is None:
            return {}
        return {"val/acc_plain": self.plain_accuracy, "val/acc_tta": self.tta_accuracy}

    def describe(self) -> str:
        if self.tta_accuracy is None:
            return "no test-time augmentation configured"
        verdict = "kept" if self.kept else "left out"
        return (
            f"test-time augmentation ({', '.join(self.transforms)}) {verdict}: validation accuracy "
            f"{self.tta_accuracy:.4f} with it, {self.plain_accuracy:.4f} without"
        )


def choose_tta(model: InferenceModel, config: EvaluateConfig, images: Tensor, labels: Tensor) -> TTAChoice:
    """`model` with `config.tta` when it raises the validation accuracy (`tta_keep: auto`; a tie
    leaves it out, it costs a forward pass per transform) or always (`tta_keep: always`)."""
    plain = model.with_tta([])
    plain_accuracy = accuracy(plain.predict(images), labels)
    if not config.tta:
        return TTAChoice(plain, [], False, plain_accuracy, None)
    augmented = model.with_tta(config.tta)
    tta_accuracy = accuracy(augmented.predict(images), labels)
    kept = config.tta_keep == "always" or tta_accuracy > plain_accuracy
    return TTAChoice(augmented if kept else plain, list(config.tta), kept, plain_accuracy, tta_accuracy)
