"""`lightning_modules.distillation`: labels blended with a teacher's probabilities, and the module
trained on them."""

from __future__ import annotations

import re

import pytest
import torch

from lightning_modules.config import OptimConfig
from lightning_modules.distillation import soft_targets
from lightning_modules.module import ClassifierModule

LABELS = torch.tensor([0, 2, 1])
TEACHER = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2]])


def test_the_blend_is_weight_parts_teacher_and_the_rest_label() -> None:
    blended = soft_targets(LABELS, TEACHER, 0.25)
    assert torch.allclose(blended[0], torch.tensor([0.875, 0.125, 0.0]))
    assert torch.allclose(blended.sum(dim=1), torch.ones(3))
    assert torch.equal(soft_targets(LABELS, TEACHER, 0.0), torch.eye(3)[LABELS])
    assert torch.equal(soft_targets(LABELS, TEACHER, 1.0), TEACHER)


@pytest.mark.parametrize(
    ("probabilities", "weight", "message"),
    [
        (TEACHER, 1.2, "weight must be in [0, 1], but got weight=1.2."),
        (TEACHER[:2], 0.5, "must have shape (3, classes) to match the labels, but got (2, 3)"),
        (TEACHER * 3, 0.5, "pass softmax outputs, not logits"),
        (-TEACHER, 0.5, "must be finite and non-negative"),
    ],
)
def test_wrong_teacher_outputs_are_refused(probabilities: torch.Tensor, weight: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        soft_targets(LABELS, probabilities, weight)


def _module(label_smoothing: float = 0.0) -> ClassifierModule:
    return ClassifierModule(
        torch.nn.Flatten(), OptimConfig(label_smoothing=label_smoothing), num_classes=3, mean=[0.5], std=[0.5]
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_one_hot_soft_targets_train_as_the_labels_do(label_smoothing: float) -> None:
    images = torch.randint(
        0, 256, (3, 1, 1, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    module = _module(label_smoothing)
    hard, _, _ = module.model_step((images, LABELS))
    soft, _, _ = module.model_step((images, soft_targets(LABELS, TEACHER, 0.0)))
    assert torch.allclose(hard, soft, atol=1e-6)


def test_the_loss_is_lowest_at_the_teachers_probabilities() -> None:
    """Trained on the teacher alone (weight 1), the loss prefers the teacher's log-probabilities as
    logits to confident logits on the labels."""
    module = _module()
    module.prepare = lambda images: images  # type: ignore[method-assign]  # logits = the float inputs
    teacher = (TEACHER + 0.01) / (TEACHER + 0.01).sum(dim=1, keepdim=True)
    targets = soft_targets(LABELS, teacher, 1.0)
    at_teacher, _, _ = module.model_step((teacher.log().view(3, 1, 1, 3), targets))
    at_labels, _, _ = module.model_step((torch.eye(3)[LABELS].mul(20).view(3, 1, 1, 3), targets))
    assert float(at_teacher) < float(at_labels)
