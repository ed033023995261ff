"""Pictures of what a CNN learned: filters, feature maps, confusion matrix, mistakes, architecture.

Every function draws one labelled PNG with matplotlib's object API on the Agg canvas (no pyplot, no
global backend switch, safe next to a live progress display). Inputs are plain tensors:

* `display` images are uint8 `N x C x H x W` (what the datamodule holds), drawn as they are;
* `inputs` are the same images as the network sees them (normalized float), fed to `network`.

The sizes are bounded (a few images, at most 64 filters, 8 channels per map, 10 000 images for the
confusion matrix) so that a trial's pictures cost a fixed, small time whatever the dataset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from lightning_modules.shapes import LayerInfo

DPI = 110
MAX_FILTERS = 64
MAX_CHANNELS = 8
MAX_BLOCKS = 6
MAX_MISTAKES = 16
MAX_EVAL_IMAGES = 10_000
ANNOTATE_CLASSES = 20  # confusion matrices up to this many classes get a count in each cell


@dataclass(frozen=True)
class Predictions:
    """Labels and predictions of a set of images, with the winning class's probability."""

    labels: Tensor
    predicted: Tensor
    confidence: Tensor

    @property
    def accuracy(self) -> float:
        return float((self.labels == self.predicted).float().mean()) if len(self.labels) else float("nan")


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _as_picture(image: Tensor) -> tuple[np.ndarray, str | None]:
    """A `C x H x W` image as what `imshow` wants: `H x W` with a gray colormap, or `H x W x 3`."""
    array = image.detach().cpu().float().numpy()
    if array.shape[0] == 3:
        top = 255.0 if array.max() > 1 else 1.0
        return np.clip(array.transpose(1, 2, 0) / top, 0, 1), None
    return array.mean(axis=0), "gray"


def _hide_axes(axes: object) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def _short(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


# ----------------------------------------------------------------------------- layers


def first_conv(network: nn.Module) -> nn.Conv2d | None:
    return next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)


def conv_blocks(network: nn.Module, sample: Tensor) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs are "the feature maps of each conv block", in forward order.

    A `convnet` has them as `network.blocks`; for any other network, the last convolution before
    each change of feature-map size (the end of a stage), found with hooks on one forward of `sample`.
    """
    blocks = getattr(network, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        return [(f"blocks.{index}", block) for index, block in enumerate(blocks)][:MAX_BLOCKS]
    names = {module: name for name, module in network.named_modules()}
    seen: list[tuple[nn.Module, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda m, _i, out: seen.append((m, tuple(out.shape[-2:]))))
        for m in network.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.inference_mode():
            network(sample[:1])
    finally:
        for hook in hooks:
            hook.remove()
    stages = [
        module for (module, size), nxt in zip(seen, [*seen[1:], (None, None)], strict=True) if size != nxt[1]
    ]
    return [(names[module], module) for module in stages][-MAX_BLOCKS:]


def capture_outputs(
    network: nn.Module, modules: Sequence[nn.Module], inputs: Tensor
) -> tuple[Tensor, list[Tensor]]:
    """Logits of `inputs` and the output of each of `modules` during that forward (on the CPU)."""
    outputs: dict[int, Tensor] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, index=index: outputs.__setitem__(index, out.detach().float().cpu())
        )
        for index, module in enumerate(modules)
    ]
    try:
        with torch.inference_mode():
            logits = network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return logits.float().cpu(), [outputs[index] for index in range(len(modules))]


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


# ----------------------------------------------------------------------------- pictures


def plot_filters(conv: nn.Conv2d, path: Path) -> Path:
    """The first layer's filters as a grid: RGB for 3 input channels, else red/blue for +/- weights."""
    weight = conv.weight.detach().float().cpu()[:MAX_FILTERS]
    out_channels, in_channels, kh, kw = weight.shape
    rows, columns = _grid(out_channels, 8)
    figure = Figure(figsize=(1.2 * columns + 0.6, 1.25 * rows + 1.0), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    rgb = in_channels == 3
    for index, axes in enumerate(grid.flat):
        _hide_axes(axes)
        if index >= out_channels:
            axes.set_axis_off()
            continue
        kernel = weight[index]
        if rgb:
            scale = kernel.abs().max().clamp_min(1e-8)
            axes.imshow((kernel / scale / 2 + 0.5).permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            kernel = kernel.mean(dim=0)
            scale = float(kernel.abs().max().clamp_min(1e-8))
            axes.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        axes.set_title(f"filter {index}", fontsize=8)
    how = "RGB, scaled per filter" if rgb else "red positive, blue negative weights, scaled per filter"
    if in_channels not in (1, 3):
        how += f"; mean over {in_channels} input channels"
    shown = (
        f"{out_channels} of {conv.out_channels}" if conv.out_channels > out_channels else str(out_channels)
    )
    figure.suptitle(f"first-layer filters: {shown} filters of {kh}x{kw} ({how})", fontsize=10)
    return _save(figure, path)


def plot_feature_maps(
    display: Tensor,
    maps: Tensor,
    path: Path,
    *,
    block: str,
    labels: Sequence[str] | None = None,
    receptive_field: int | None = None,
) -> Path:
    """One block's output for a few images: a row per image, the input first, then its most active maps.

    `maps` is `N x C x h x w`; the channels shown are the `MAX_CHANNELS` with the highest mean
    activation over these images, each drawn with its own color scale (brighter: stronger).
    """
    count, channels, height, width = maps.shape
    chosen = maps.mean(dim=(0, 2, 3)).argsort(descending=True)[:MAX_CHANNELS].tolist()
    columns = 1 + len(chosen)
    figure = Figure(figsize=(1.35 * columns + 0.4, 1.45 * count + 1.0), layout="constrained")
    grid = figure.subplots(count, columns, squeeze=False)
    for row in range(count):
        picture, cmap = _as_picture(display[row])
        grid[row, 0].imshow(picture, cmap=cmap, interpolation="nearest")
        grid[row, 0].set_title(_short(labels[row]) if labels else "input", fontsize=8)
        for column, channel in enumerate(chosen, start=1):
            grid[row, column].imshow(maps[row, channel].numpy(), cmap="viridis", interpolation="nearest")
            if row == 0:
                grid[row, column].set_title(f"channel {channel}", fontsize=8)
        for axes in grid[row]:
            _hide_axes(axes)
    seen = f", each pixel sees {receptive_field}x{receptive_field} input pixels" if receptive_field else ""
    figure.suptitle(
        f"feature maps after {block}: {channels} channels of {height}x{width}{seen}\n"
        f"the {len(chosen)} most active channels (brighter = stronger activation)",
        fontsize=10,
    )
    return _save(figure, path)


def plot_confusion_matrix(predictions: Predictions, class_names: Sequence[str], path: Path) -> Path:
    """Rows: true class; columns: predicted class; color: share of the row, numbers: counts."""
    classes = len(class_names)
    counts = torch.zeros(classes, classes, dtype=torch.int64)
    counts.index_put_(
        (predictions.labels.long(), predictions.predicted.long()),
        torch.ones(len(predictions.labels), dtype=torch.int64),
        accumulate=True,
    )
    shares = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    side = min(4.0 + 0.45 * classes, 16.0)
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    if classes <= ANNOTATE_CLASSES:
        ticks = list(range(classes))
        names = [_short(name) for name in class_names]
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
    axes.set_title(
        f"confusion matrix on {len(predictions.labels):,} validation images "
        f"(accuracy {predictions.accuracy:.1%})",
        fontsize=10,
    )
    return _save(figure, path)


def plot_misclassified(
    display: Tensor, predictions: Predictions, class_names: Sequence[str], path: Path
) -> Path:
    """The most confident mistakes, each titled with the true and the predicted class."""
    wrong = (predictions.labels != predictions.predicted).nonzero().flatten()
    wrong = wrong[predictions.confidence[wrong].argsort(descending=True)][:MAX_MISTAKES]
    rows, columns = _grid(max(len(wrong), 1), 4)
    figure = Figure(figsize=(2.1 * columns + 0.4, 2.2 * rows + 0.8), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        _hide_axes(axes)
        axes.set_axis_off()
    for axes, index in zip(grid.flat, wrong.tolist(), strict=False):
        axes.set_axis_on()
        picture, cmap = _as_picture(display[index])
        axes.imshow(picture, cmap=cmap, interpolation="nearest")
        true, guess = (
            class_names[int(predictions.labels[index])],
            class_names[int(predictions.predicted[index])],
        )
        axes.set_title(
            f"true: {_short(true)}\npredicted: {_short(guess)} ({float(predictions.confidence[index]):.0%})",
            fontsize=8,
        )
    total = int((predictions.labels != predictions.predicted).sum())
    if not len(wrong):
        grid.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center", transform=grid.flat[0].transAxes)
    figure.suptitle(
        f"misclassified: the {len(wrong)} most confident of {total} mistakes "
        f"in {len(predictions.labels):,} images",
        fontsize=10,
    )
    return _save(figure, path)


def plot_architecture(rows: Sequence[LayerInfo], image_size: tuple[int, int], path: Path) -> Path:
    """Per conv/pool layer: receptive field vs feature-map side; per conv: params vs dense equivalent."""
    spatial = [row for row in rows if row.kind in ("conv", "pool") and len(row.out_shape) == 3]
    if not spatial:
        spatial = [row for row in rows if len(row.out_shape) == 3]
    convs = [row for row in rows if row.kind == "conv"]
    figure = Figure(figsize=(max(6.0, 0.7 * len(spatial) + 3), 7.5), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    positions = np.arange(len(spatial))
    names = [_short(row.name, 18) for row in spatial]
    fields = [row.receptive_field or 0 for row in spatial]
    sides = [row.out_shape[1] for row in spatial]
    top.bar(positions - 0.2, fields, width=0.4, label="receptive field (input pixels)", color="tab:orange")
    top.bar(positions + 0.2, sides, width=0.4, label="feature map height (pixels)", color="tab:blue")
    top.axhline(image_size[0], color="gray", linestyle="--", label=f"input height ({image_size[0]})")
    top.set_xticks(positions, names, rotation=40, ha="right", fontsize=8)
    top.set_ylabel("pixels")
    top.set_title("what each layer sees (receptive field) and how big its map is", fontsize=10)
    top.legend(fontsize=8)
    if convs:
        where = np.arange(len(convs))
        bottom.bar(
            where - 0.2, [row.params for row in convs], width=0.4, label="conv parameters", color="tab:green"
        )
        bottom.bar(
            where + 0.2,
            [row.dense_params for row in convs],
            width=0.4,
            label="dense layer, same in/out",
            color="tab:red",
        )
        bottom.set_yscale("log")
        bottom.set_xticks(where, [_short(row.name, 18) for row in convs], rotation=40, ha="right", fontsize=8)
        bottom.set_ylabel("parameters (log scale)")
        bottom.set_title(
            "weight sharing: a conv layer's parameters vs a dense layer with the same input and output",
            fontsize=10,
        )
        bottom.legend(fontsize=8)
    else:
        bottom.set_axis_off()
    return _save(figure, path)


def block_file_name(block: str) -> str:
    """`blocks.0` -> `feature_maps_block0.png`; other module names with dots as underscores."""
    return "feature_maps_" + block.replace("blocks.", "block").replace(".", "_") + ".png"


def draw_feature_maps(
    network: nn.Module,
    inputs: Tensor,
    display: Tensor,
    folder: Path,
    *,
    titles: Sequence[str] | None = None,
    fields: dict[str, int] | None = None,
) -> list[Path]:
    """One `feature_maps_<block>.png` per conv block for the images `inputs` (drawn as `display`)."""
    blocks = conv_blocks(network, inputs)
    _, maps = capture_outputs(network, [module for _, module in blocks], inputs)
    fields = fields or {}
    return [
        plot_feature_maps(
            display,
            output,
            folder / block_file_name(name),
            block=name,
            labels=titles,
            receptive_field=fields.get(name),
        )
        for (name, _), output in zip(blocks, maps, strict=True)
        if output.dim() == 4
    ]
