"""What every trial and study leaves in MLflow besides metrics: tables and pictures."""

from __future__ import annotations

from pathlib import Path

import torch

from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.models.layer_table import LayerInfo
from lightning_modules.module import ClassifierModule
from lightning_modules.training import RunParts
from search.inspect.architecture_plot import plot_architecture
from search.inspect.describe import architecture_markdown, layer_infos
from search.inspect.evaluation import (
    MAX_EVAL_IMAGES,
    Predictions,
    evaluate_predictions,
    plot_confusion,
    predict,
    title_on_validation,
)
from search.inspect.feature_maps import draw_feature_maps, receptive_fields
from search.inspect.filters import first_conv, plot_filters
from search.inspect.mistakes import plot_misclassified
from search.study.objective import ArtifactWriter

FEATURE_MAP_IMAGES = 4
_ARCHITECTURE_PNGS: dict[tuple[object, ...], bytes] = {}


def _rows(parts: RunParts, config: RunConfig) -> list[LayerInfo]:
    datamodule = parts.datamodule
    return layer_infos(config, datamodule.in_channels, datamodule.image_size, datamodule.num_classes)


def write_architecture(parts: RunParts, config: RunConfig, best: BestWeights, folder: Path) -> None:
    """architecture.md: per layer kind, filter, stride, padding, output shape, receptive field,
    parameters and dense-equivalent cost; architecture.png: the same as two bar charts."""
    rows = _rows(parts, config)
    (folder / "architecture.md").write_text(architecture_markdown(rows))
    key = (tuple(rows), parts.datamodule.image_size)
    if key not in _ARCHITECTURE_PNGS:  # trials often share an architecture: draw it once per process
        _ARCHITECTURE_PNGS.clear()
        _ARCHITECTURE_PNGS[key] = plot_architecture(rows, key[1], folder / "architecture.png").read_bytes()
    (folder / "architecture.png").write_bytes(_ARCHITECTURE_PNGS[key])


def write_pictures(parts: RunParts, config: RunConfig, best: BestWeights, folder: Path) -> None:
    """filters.png, feature_maps_<block>.png, confusion_matrix.png, misclassified.png of the best epoch."""
    best.restore(parts.module)
    module, datamodule = parts.module, parts.datamodule
    training = module.training
    module.eval()
    try:
        draw_pictures(
            module,
            datamodule.val_images,
            datamodule.val_labels,
            datamodule.class_names,
            folder,
            _rows(parts, config),
            best.best_predictions,
        )
    finally:
        module.train(training)


def draw_pictures(
    module: ClassifierModule,
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    folder: Path,
    rows: list[LayerInfo] | None = None,
    predictions: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[Path]:
    """All per-trial pictures of `module` on uint8 `images` (the validation split) into `folder`.

    `predictions` (classes, probabilities) of the best validation epoch, when given, spare a second
    pass over the images for the confusion matrix and the mistakes.
    """
    device = next(module.parameters()).device
    images, labels = images[:MAX_EVAL_IMAGES], labels[:MAX_EVAL_IMAGES]
    inputs = module.prepare(images.to(device))
    network = module.model
    written: list[Path] = []
    conv = first_conv(network)
    if conv is not None:
        written.append(plot_filters(conv, folder / "filters.png"))
    few = slice(0, FEATURE_MAP_IMAGES)
    titles = [class_names[int(label)] for label in labels[few]]
    fields = receptive_fields(rows or [])
    written += draw_feature_maps(network, inputs[few], images[few], folder, titles=titles, fields=fields)
    known = _known_predictions(predictions, labels)
    predictions = known if known is not None else predict(network, inputs, labels)
    evaluation = evaluate_predictions(predictions.predicted, predictions.labels, class_names)
    confusion = folder / "confusion_matrix.png"
    written.append(plot_confusion(evaluation, confusion, title=title_on_validation(evaluation)))
    written.append(plot_misclassified(images, predictions, class_names, folder / "misclassified.png"))
    return written


def _known_predictions(
    predictions: tuple[torch.Tensor, torch.Tensor] | None, labels: torch.Tensor
) -> Predictions | None:
    """The validation pass's predictions when they cover the images in order, else None."""
    if predictions is None or len(predictions[0]) < len(labels):
        return None
    count = len(labels)
    return Predictions(labels.cpu(), predictions[0][:count].cpu(), predictions[1][:count].cpu())


def trial_writers() -> list[ArtifactWriter]:
    return [write_architecture, write_pictures]
