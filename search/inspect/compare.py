"""Two trained models side by side: what the cheaper one gave up (`convtune explain A IMG --compare B`).

Each model is summarized from its traced architecture table (conv layers with their filter size,
stride, output channels and receptive field; parameters and multiply-adds), its latency per image
measured on this CPU (batch 1, float32, one thread) and its prediction for the image. The table
puts the two side by side, conv layer by conv layer, and one sentence says what the cheaper one
(fewer multiply-adds) gave up and what it saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.image import imread
from torch import Tensor

from lightning_modules.latency import measure_latency
from lightning_modules.models.layer_table import LayerInfo
from lightning_modules.models.tracing import traced_table
from search.experiment.budgets import format_cost
from search.tracking.model_store import InferenceModel


@dataclass(frozen=True)
class ModelSummary:
    """What a model costs and sees, and what it predicted for one image."""

    label: str
    rows: list[LayerInfo]
    latency_ms: float
    prediction: str
    probability: float

    @property
    def convs(self) -> list[LayerInfo]:
        return [row for row in self.rows if row.kind == "conv"]

    @property
    def params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def receptive_field(self) -> int | None:
        """The receptive field of the last conv layer, in input pixels."""
        convs = self.convs
        return convs[-1].receptive_field if convs else None

    @property
    def widths(self) -> str:
        return "-".join(str(row.out_shape[0]) for row in self.convs)


def summarize(model: InferenceModel, label: str, images: Tensor) -> ModelSummary:
    """`images`: the one uint8 image (1 x C x H x W) at the model's size."""
    network = model.network.eval()
    rows = traced_table(network, model.in_channels, model.image_size)
    latency = measure_latency(network, (model.in_channels, *model.image_size), batch_size=1)
    probabilities = model.predict(images)[0]
    index = int(probabilities.argmax())
    return ModelSummary(
        label, rows, latency.ms_per_image, model.class_names[index], float(probabilities[index])
    )


def _square(value: int | tuple[int, int] | None) -> str:
    if value is None:
        return "?"
    return f"{value}x{value}" if isinstance(value, int) else "x".join(map(str, value))


def _conv_cell(row: LayerInfo | None) -> str:
    if row is None:
        return ""
    stride = row.stride if isinstance(row.stride, int) else _square(row.stride)
    shape = "x".join(map(str, row.out_shape))
    filters = f"{_square(row.kernel)} stride {stride}, {row.out_shape[0]} filters"
    return f"{filters} -> {shape}, field {row.receptive_field}"


def comparison_rows(a: ModelSummary, b: ModelSummary) -> list[tuple[str, str, str]]:
    """(what, A, B) rows: totals first, then the conv layers side by side."""
    rows = [
        ("parameters", format_cost(a.params), format_cost(b.params)),
        ("multiply-adds per image", format_cost(a.macs), format_cost(b.macs)),
        ("latency per image (CPU, batch 1)", f"{a.latency_ms:.3g} ms", f"{b.latency_ms:.3g} ms"),
        ("conv layers", str(len(a.convs)), str(len(b.convs))),
        ("channels (filters per conv)", a.widths, b.widths),
        ("receptive field of the last conv", f"{a.receptive_field} px", f"{b.receptive_field} px"),
        ("prediction", f"{a.prediction} ({a.probability:.1%})", f"{b.prediction} ({b.probability:.1%})"),
    ]
    for index in range(max(len(a.convs), len(b.convs))):
        mine = a.convs[index] if index < len(a.convs) else None
        theirs = b.convs[index] if index < len(b.convs) else None
        rows.append((f"conv {index + 1}", _conv_cell(mine), _conv_cell(theirs)))
    return rows


def gave_up(a: ModelSummary, b: ModelSummary) -> str:
    """One sentence: what the cheaper model (fewer multiply-adds) gave up against the other."""
    cheap, rich = (b, a) if (b.macs, b.params) <= (a.macs, a.params) else (a, b)
    parts = [
        f"{rich.macs / max(cheap.macs, 1):.1f}x fewer multiply-adds",
        f"{rich.params / max(cheap.params, 1):.1f}x fewer parameters",
        f"{rich.latency_ms / max(cheap.latency_ms, 1e-9):.1f}x the speed per image",
    ]
    lost = [f"channels {rich.widths} -> {cheap.widths}"]
    if cheap.receptive_field != rich.receptive_field:
        lost.append(f"receptive field {rich.receptive_field} -> {cheap.receptive_field} px")
    if len(cheap.convs) != len(rich.convs):
        lost.append(f"conv layers {len(rich.convs)} -> {len(cheap.convs)}")
    return (
        f"{cheap.label} (the cheaper) has {', '.join(parts)} than {rich.label}; it gave up {', '.join(lost)}."
    )


def comparison_markdown(a: ModelSummary, b: ModelSummary) -> str:
    lines = [
        f"# {a.label} against {b.label}",
        "",
        gave_up(a, b),
        "",
        f"| | {a.label} | {b.label} |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | {mine} | {theirs} |" for what, mine, theirs in comparison_rows(a, b)]
    return "\n".join(lines) + "\n"


def side_by_side(left: Path, right: Path, titles: tuple[str, str], path: Path) -> Path:
    """Two pictures (the models' filters.png) in one figure, titled."""
    figure = Figure(figsize=(12, 6), layout="constrained")
    for axes, picture, title in zip(figure.subplots(1, 2), (left, right), titles, strict=True):
        axes.imshow(imread(picture))
        axes.set_title(title, fontsize=9)
        axes.axis("off")
    figure.savefig(path, dpi=110)
    return path
