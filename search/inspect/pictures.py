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
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from lightning_modules.models.layer_table import LayerInfo

DPI = 90
MAX_FILTERS = 64
MAX_CHANNELS = 8
MAX_BLOCKS = 6
MAX_MISTAKES = 16
MAX_EVAL_IMAGES = 10_000
PNG_COMPRESSION = 1  # zlib level: a few % larger files, several times faster to write than the default 6
TITLE_Y = 1.02  # a fixed title height spares matplotlib measuring every tick label to place it
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
    figure.savefig(path, dpi=DPI, format="png", pil_kwargs={"compress_level": PNG_COMPRESSION})
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


def receptive_fields(rows: list[LayerInfo]) -> dict[str, int]:
    """Receptive field at the end of each module prefix (`blocks.0` -> its last row's field)."""
    fields: dict[str, int] = {}
    for row in rows:
        if row.receptive_field is None:
            continue
        parts = row.name.split(".")
        for end in range(1, len(parts) + 1):
            fields[".".join(parts[:end])] = row.receptive_field
    return fields


# ----------------------------------------------------------------------------- pictures


def _rgb(picture: np.ndarray, cmap: str | None, *, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """An `H x W` array through a colormap (or an `H x W x 3` array as is) as `H x W x 3` in [0, 1]."""
    if picture.ndim == 3:
        return picture
    scaled = (picture - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(picture)
    return colormaps[cmap or "gray"](np.clip(scaled, 0, 1))[..., :3]


def _input_rgb(image: Tensor) -> np.ndarray:
    picture, cmap = _as_picture(image)
    if picture.ndim == 2:
        top = 255.0 if picture.max() > 1 else 1.0
        return _rgb(picture, cmap, vmax=top)
    return picture


def _resize(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize, so that every cell of a mosaic has the same size."""
    rows = (np.arange(height) * picture.shape[0] // height).clip(0, picture.shape[0] - 1)
    columns = (np.arange(width) * picture.shape[1] // width).clip(0, picture.shape[1] - 1)
    return picture[rows][:, columns]


def _mosaic(
    cells: Sequence[Sequence[np.ndarray | None]],
    titles: Sequence[Sequence[str]],
    title: str,
    *,
    cell_inches: float = 1.25,
    title_lines: int = 1,
) -> Figure:
    """A grid of RGB pictures drawn as ONE image in one axes, each titled (fast: one axes, no layout)."""
    pictures = [cell for row in cells for cell in row if cell is not None]
    height = max(max(p.shape[0] for p in pictures), 32)
    width = max(max(p.shape[1] for p in pictures), 32)
    rows, columns = len(cells), max(len(row) for row in cells)
    band = 0.17 * title_lines + 0.06  # inches above each cell for its title
    gap = 0.12
    cell_height = cell_inches * height / width
    band_px, gap_px = round(band / cell_inches * width), round(gap / cell_inches * width)
    canvas = np.ones((rows * (height + band_px), columns * (width + gap_px), 3))
    top_inches = 0.25 + 0.18 * (title.count("\n") + 1)
    figure = Figure(figsize=(columns * (cell_inches + gap), rows * (cell_height + band) + top_inches))
    axes = figure.add_axes((0, 0, 1, 1 - top_inches / figure.get_figheight()))
    for row, line in enumerate(cells):
        for column, cell in enumerate(line):
            if cell is None:
                continue
            y, x = row * (height + band_px) + band_px, column * (width + gap_px) + gap_px // 2
            canvas[y : y + height, x : x + width] = _resize(cell, height, width)
            text = titles[row][column] if row < len(titles) and column < len(titles[row]) else ""
            axes.text(x + width / 2, y - band_px * 0.1, text, ha="center", va="bottom", fontsize=7)
    axes.imshow(canvas, interpolation="nearest", aspect="auto")
    axes.set_axis_off()
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / figure.get_figheight())
    return figure


def plot_filters(conv: nn.Conv2d, path: Path) -> Path:
    """The first layer's filters as a grid: RGB for 3 input channels, else red/blue for +/- weights."""
    weight = conv.weight.detach().float().cpu()[:MAX_FILTERS]
    out_channels, in_channels, kh, kw = weight.shape
    rows, columns = _grid(out_channels, 8)
    rgb = in_channels == 3
    cells: list[list[np.ndarray | None]] = [[None] * columns for _ in range(rows)]
    titles = [[""] * columns for _ in range(rows)]
    for index in range(out_channels):
        kernel = weight[index]
        scale = float(kernel.abs().max().clamp_min(1e-8))
        if rgb:
            picture = (kernel / scale / 2 + 0.5).permute(1, 2, 0).numpy()
        else:
            kernel = kernel.mean(dim=0)
            scale = float(kernel.abs().max().clamp_min(1e-8))
            picture = _rgb(kernel.numpy(), "RdBu_r", vmin=-scale, vmax=scale)
        cells[index // columns][index % columns] = picture
    how = "RGB, scaled per filter" if rgb else "red: positive, blue: negative weight, scaled per filter"
    if in_channels not in (1, 3):
        how += f"; mean over {in_channels} input channels"
    shown = (
        f"{out_channels} of {conv.out_channels}" if conv.out_channels > out_channels else str(out_channels)
    )
    title = f"first-layer filters: {shown} filters of {kh}x{kw}, row by row\n({how})"
    return _save(_mosaic(cells, titles, title, cell_inches=1.0), path)


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
    cells: list[list[np.ndarray | None]] = []
    titles: list[list[str]] = []
    for row in range(count):
        line: list[np.ndarray | None] = [_input_rgb(display[row])]
        for channel in chosen:
            picture = maps[row, channel].numpy()
            line.append(_rgb(picture, "viridis", vmin=float(picture.min()), vmax=float(picture.max())))
        cells.append(line)
        names = [f"channel {c}" for c in chosen] if row == 0 else []  # column headers on top only
        titles.append([f"input: {_short(labels[row])}" if labels else "input", *names])
    seen = f", each pixel sees {receptive_field}x{receptive_field} input pixels" if receptive_field else ""
    title = (
        f"feature maps after {block}: {channels} channels of {height}x{width}{seen}\n"
        f"left: the input image; then the {len(chosen)} most active channels (brighter = stronger)"
    )
    return _save(_mosaic(cells, titles, title), path)


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
    side = min(3.5 + 0.35 * classes, 14.0)
    square = side - 1.6  # inches of the matrix itself; fixed margins instead of a layout engine
    width, height = square + 2.9, square + 1.5
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((1.1 / width, 1.0 / height, square / width, square / height))
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
        y=TITLE_Y,
    )
    return _save(figure, path)


def plot_misclassified(
    display: Tensor, predictions: Predictions, class_names: Sequence[str], path: Path
) -> Path:
    """The most confident mistakes, each titled with the true and the predicted class."""
    wrong = (predictions.labels != predictions.predicted).nonzero().flatten()
    wrong = wrong[predictions.confidence[wrong].argsort(descending=True)][:MAX_MISTAKES].tolist()
    rows, columns = _grid(max(len(wrong), 1), 4)
    cells: list[list[np.ndarray | None]] = [[None] * columns for _ in range(rows)]
    titles = [[""] * columns for _ in range(rows)]
    for slot, index in enumerate(wrong):
        true = class_names[int(predictions.labels[index])]
        guess = class_names[int(predictions.predicted[index])]
        cells[slot // columns][slot % columns] = _input_rgb(display[index])
        titles[slot // columns][slot % columns] = (
            f"true: {_short(true)}\npredicted: {_short(guess)} ({float(predictions.confidence[index]):.0%})"
        )
    if not wrong:
        cells[0][0] = np.ones((32, 32, 3))
        titles[0][0] = "no mistakes"
    total = int((predictions.labels != predictions.predicted).sum())
    title = (
        f"misclassified: the {len(wrong)} most confident of {total} mistakes\n"
        f"in {len(predictions.labels):,} validation images"
    )
    return _save(_mosaic(cells, titles, title, cell_inches=1.6, title_lines=2), path)


def plot_architecture(rows: Sequence[LayerInfo], image_size: tuple[int, int], path: Path) -> Path:
    """Per conv/pool layer: receptive field vs feature-map side; per conv: params vs dense equivalent."""
    spatial = [row for row in rows if row.kind in ("conv", "pool") and len(row.out_shape) == 3]
    if not spatial:
        spatial = [row for row in rows if len(row.out_shape) == 3]
    convs = [row for row in rows if row.kind == "conv"]
    figure = Figure(figsize=(max(6.0, 0.7 * len(spatial) + 3), 7.5))
    figure.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.14, hspace=0.75)  # fixed: faster
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
    top.set_title("what each layer sees (receptive field) and how big its map is", fontsize=10, y=TITLE_Y)
    top.set_ylim(0, 1.45 * max([*fields, *sides, image_size[0]]))  # room for the legend
    top.legend(fontsize=8, loc="upper left", ncols=2)
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
        bottom.set_ylim(top=30 * max(row.dense_params for row in convs))
        bottom.set_xticks(where, [_short(row.name, 18) for row in convs], rotation=40, ha="right", fontsize=8)
        bottom.set_ylabel("parameters (log scale)")
        bottom.set_title(
            "weight sharing: parameters of each conv layer\nvs a dense layer with the same input and output",
            fontsize=10,
            y=TITLE_Y,
        )
        bottom.legend(fontsize=8, loc="upper left", ncols=2)
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
