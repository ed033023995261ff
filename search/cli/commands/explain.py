"""Show what a trained model sees in one image: filters, feature maps, Grad-CAM, architecture table.

MODEL is a registered model (models:/<name>@champion), a run's model (runs:/<run id>/model), an
MLflow model folder or a saved model file. Writes PNGs into --out and prints the prediction and
the architecture table (per layer: filter, stride, padding, output shape, receptive field, params).

With --compare OTHER, OTHER is explained too (its pictures in --out/compare/) and the two are shown
side by side: parameters, multiply-adds, latency, channels, filter sizes, strides and receptive
field per conv layer, their predictions, and what the cheaper one gave up (comparison.md,
compare_filters.png): e.g. the champion against a front model picked under a latency budget.

An ensemble (models:/<name>@ensemble) is explained member by member, each into --out/member-<i>/,
followed by the ensemble's own prediction.

Examples:
  convtune explain models:/quickstart@champion digit.png
  convtune explain models:/quickstart@ensemble digit.png
  convtune explain runs:/0123abcd/model shoe.png --out explain-shoe
  convtune explain models:/fashion-mnist-pareto@champion shoe.png \
      --compare models:/fashion-mnist-pareto@params-20k
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from search.reproduce.ensemble_model import EnsembleModel
    from search.tracking.model_store import InferenceModel


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="models:/<name>@<alias>, runs:/<id>/model, or a path")
    parser.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG)")
    parser.add_argument(
        "--out", metavar="DIR", help="folder for the pictures (default: explain-<image name>)"
    )
    parser.add_argument(
        "--compare",
        metavar="OTHER",
        help="a second model (same forms as MODEL) to show side by side: what the cheaper one gave up",
    )


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.experiment.names import check_output_folder
    from search.tracking.model_store import InferenceModel, load_inference_model

    out = check_output_folder(args.out or f"explain-{Path(args.image).stem}", "--out")
    model = load_inference_model(args.model)
    if not isinstance(model, InferenceModel):
        return explain_ensemble(args, model, out)
    other = load_inference_model(args.compare) if args.compare else None  # both load before any work
    if other is not None and not isinstance(other, InferenceModel):
        raise ConfigError(f"--compare takes a single model, but {args.compare} is an ensemble.")
    console = _console()
    explain_one(model, args.image, out, console, f"architecture of {model.description.model.get('name')}")
    if other is not None:
        compare(args, model, other, out, console)
    return 0


def _console() -> Console:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)  # readable tables in logs and pipes


def explain_one(model: InferenceModel, image: str, out: Path, console: Console, title: str) -> None:
    """Pictures of what `model` sees in `image` into `out`, its architecture table and prediction."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from lightning_modules.models.tracing import traced_table
    from search.inspect.describe import architecture_markdown, architecture_rich_table
    from search.inspect.gradcam import explain_image
    from search.reproduce.images import prepare_images

    images = prepare_images([image], model.in_channels, model.image_size)
    rows = traced_table(model.network, model.in_channels, model.image_size)
    explanation = explain_image(model.network, model.normalize(images), images, model.class_names, out, rows)
    (out / "architecture.md").write_text(architecture_markdown(rows))
    console.print(architecture_rich_table(rows, title=title))
    probability = float(explanation.probabilities[explanation.predicted])
    console.print(
        f"prediction: [bold]{model.class_names[explanation.predicted]}[/bold] ({probability:.1%}); "
        f"Grad-CAM at {explanation.layer}"
    )
    console.print(f"pictures in {out}/: " + ", ".join(path.name for path in explanation.paths))


def explain_ensemble(args: argparse.Namespace, model: EnsembleModel, out: Path) -> int:
    """Every member explained into out/member-<i>/, then the ensemble's prediction."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.reproduce.images import prepare_images

    if args.compare:
        raise ConfigError("--compare takes single models; explain an ensemble's members without it.")
    console = _console()
    description = model.description
    for index, member in enumerate(model.members):
        trial = (member.description.source or {}).get("trial", "?")
        title = (
            f"member {index} of {len(model.members)} (trial {trial}, weight "
            f"{description.weights[index]:.3g}): {member.description.model.get('name')}"
        )
        explain_one(member, args.image, out / f"member-{index}", console, title)  # type: ignore[arg-type]
    probabilities = model.predict(prepare_images([args.image], model.in_channels, model.image_size))[0]
    predicted = int(probabilities.argmax())
    console.print(
        f"ensemble ({description.method}, {len(model.members)} members) prediction: "
        f"[bold]{model.class_names[predicted]}[/bold] ({float(probabilities[predicted]):.1%})"
    )
    return 0


def compare(
    args: argparse.Namespace, model: InferenceModel, other: InferenceModel, out: Path, console: Console
) -> None:
    """Explains --compare's model into out/compare/ and prints the two side by side."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from rich.table import Table

    from search.inspect.compare import comparison_markdown, comparison_rows, gave_up, side_by_side, summarize
    from search.inspect.gradcam import explain_image
    from search.reproduce.images import prepare_images

    folder = out / "compare"
    other_images = prepare_images([args.image], other.in_channels, other.image_size)
    explain_image(other.network, other.normalize(other_images), other_images, other.class_names, folder)
    images = prepare_images([args.image], model.in_channels, model.image_size)
    mine, theirs = summarize(model, args.model, images), summarize(other, args.compare, other_images)
    table = Table(title="side by side")
    for column in ("", args.model, args.compare):
        table.add_column(column, overflow="fold")
    for row in comparison_rows(mine, theirs):
        table.add_row(*row)
    console.print(table)
    console.print(gave_up(mine, theirs), highlight=False)
    (out / "comparison.md").write_text(comparison_markdown(mine, theirs))
    pictures = (out / "filters.png", folder / "filters.png")
    if all(path.is_file() for path in pictures):
        titles = (f"first-layer filters of {args.model}", args.compare)
        side_by_side(*pictures, titles, out / "compare_filters.png")
    console.print(
        f"side by side: {out}/comparison.md, {out}/compare_filters.png; {args.compare}'s pictures: {folder}/"
    )
