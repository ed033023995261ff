"""Knowledge distillation as soft targets: a teacher's class probabilities blended with the labels.

A student trained with cross-entropy against `(1 - weight) * one_hot(label) + weight * teacher` is
trained on Hinton et al.'s distillation loss at temperature 1: the blend's cross-entropy is the hard
labels' term plus `weight` times the KL divergence from the teacher, up to the teacher's entropy (a
constant). The teacher's probabilities are computed once per training image, before training, so the
hot loop costs what it costs without a teacher; an augmented view is taught with its image's
probabilities (a flip or a small shift does not change what the image is).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_modules.strict_model import check_closed_unit_interval

PROBABILITY_TOLERANCE = 1e-3


def check_weight(weight: float) -> float:
    return float(check_closed_unit_interval("weight", weight))


def soft_targets(labels: Tensor, probabilities: Tensor, weight: float) -> Tensor:
    """float32 (N, C) rows that sum to 1: the labels' one-hot rows blended with the teacher's."""
    check_weight(weight)
    if labels.ndim != 1 or probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            f"the teacher's probabilities must have shape ({labels.shape[0]}, classes) to match the "
            f"labels, but got {tuple(probabilities.shape)}."
        )
    probabilities = probabilities.detach().to(torch.float32).cpu()
    check_probabilities(probabilities)
    one_hot = torch.nn.functional.one_hot(labels.cpu(), probabilities.shape[1]).to(torch.float32)
    return (1 - weight) * one_hot + weight * probabilities


def check_probabilities(rows: Tensor) -> None:
    if not bool(torch.isfinite(rows).all()) or bool((rows < 0).any()):
        raise ValueError("the teacher's probabilities must be finite and non-negative.")
    worst = float((rows.sum(dim=1) - 1).abs().max()) if rows.numel() else 0.0
    if worst > PROBABILITY_TOLERANCE:
        raise ValueError(
            f"each image's teacher probabilities must sum to 1, but one row is off by {worst:.3g}; "
            "pass softmax outputs, not logits."
        )
