"""How well a network does on a set of images: its predictions, their confusion matrix and its picture.

The one confusion matrix of convtune: counted by torchmetrics (rows: true class, columns: predicted
class), summarized by `Evaluation` (accuracy, per-class accuracy, JSON) and drawn by `plot_confusion`,
for a trial's validation images and for a reproduction's or `convtune evaluate`'s test split alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_confusion_matrix

from search.inspect.drawing import TITLE_Y, save, short
from search.tracking.model_store import AnyModel

MAX_EVAL_IMAGES = 10_000  # a trial's pictures look at most this many validation images
ANNOTATE_CLASSES = 20  # confusion matrices up to this many classes get a count in each cell


@dataclass(frozen=True)
class Predictions:
    """Labels and predictions of a set of images, with the winning class's probability."""

    labels: Tensor
    predicted: Tensor
    confidence: Tensor


def predict(network: nn.Module, inputs: Tensor, labels: Tensor, batch_size: int = 512) -> Predictions:
    """Predictions of up to `MAX_EVAL_IMAGES` images, in batches, on the network's device."""
    inputs, labels = inputs[:MAX_EVAL_IMAGES], labels[:MAX_EVAL_IMAGES]
    predicted, confidence = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            probabilities = network(inputs[start : start + batch_size]).float().softmax(dim=1).cpu()
            best = probabilities.max(dim=1)
            predicted.append(best.indices)
            confidence.append(best.values)
    if not predicted:
        empty = torch.zeros(0)
        return Predictions(labels.cpu(), empty.long(), empty)
    return Predictions(labels.cpu(), torch.cat(predicted), torch.cat(confidence))


@dataclass
class Evaluation:
    """Accuracy of predictions against labels: overall, per class, and the confusion matrix."""

    class_names: list[str]
    confusion: Tensor  # (classes, classes) int64, rows: true class, columns: predicted class

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(self.confusion.diagonal().sum()) / max(self.total, 1)

    @property
    def per_class(self) -> dict[str, float | None]:
        """Accuracy (recall) per true class; None for a class absent from the labels."""
        counts = self.confusion.sum(dim=1)
        return {
            name: (float(self.confusion[i, i]) / int(counts[i]) if int(counts[i]) else None)
            for i, name in enumerate(self.class_names)
        }

    def to_json(self) -> dict[str, object]:
        return {
            "class_names": self.class_names,
            "rows": "true class",
            "columns": "predicted class",
            "matrix": self.confusion.tolist(),
            "accuracy": self.accuracy,
            "per_class_accuracy": self.per_class,
        }


def confusion_counts(predicted: Tensor, labels: Tensor, classes: int) -> Tensor:
    """(classes, classes) int64 counts; rows: true class, columns: predicted class.

    torchmetrics' argument checks are off: labels and argmax predictions are in range by
    construction, and the checks would refuse a model of one class.
    """
    return multiclass_confusion_matrix(
        predicted.long().cpu(), labels.long().cpu(), num_classes=classes, validate_args=False
    )


def evaluate_predictions(predicted: Tensor, labels: Tensor, class_names: Sequence[str]) -> Evaluation:
    return Evaluation(list(class_names), confusion_counts(predicted, labels, len(class_names)))


def evaluate_model(model: AnyModel, images: Tensor, labels: Tensor) -> Evaluation:
    return evaluate_predictions(model.predict(images).argmax(dim=1), labels, model.class_names)


def plot_confusion(evaluation: Evaluation, path: Path, *, title: str) -> Path:
    """Rows: true class; columns: predicted class; color: share of the row, numbers: counts (up to
    `ANNOTATE_CLASSES` classes)."""
    counts = evaluation.confusion
    classes = counts.shape[0]
    shares = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    side = min(3.5 + 0.35 * classes, 14.0)
    square = side - 1.6  # inches of the matrix itself; fixed margins instead of a layout engine
    width, height = square + 2.9, square + 1.5
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((1.1 / width, 1.0 / height, square / width, square / height))
    image = axes.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    if classes <= ANNOTATE_CLASSES:
        ticks = list(range(classes))
        names = [short(name) for name in evaluation.class_names]
        axes.set_xticks(ticks, names, rotation=45, ha="right", fontsize=8)
        axes.set_yticks(ticks, names, fontsize=8)
        for true in range(classes):
            for guess in range(classes):
                value = int(counts[true, guess])
                if value:
                    color = "white" if shares[true, guess] > 0.5 else "black"
                    axes.text(guess, true, str(value), ha="center", va="center", fontsize=7, color=color)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title, fontsize=10, y=TITLE_Y)
    return save(figure, path)


def title_on_validation(evaluation: Evaluation) -> str:
    """The title of a trial's confusion matrix (validation images)."""
    return f"confusion matrix on {evaluation.total:,} validation images (accuracy {evaluation.accuracy:.1%})"


def title_on_test_split(evaluation: Evaluation) -> str:
    """The title of a reproduction's confusion matrix (the test split)."""
    return f"test split: {evaluation.total:,} images, accuracy {evaluation.accuracy:.2%}"
