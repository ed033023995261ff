"""Show what a trained model sees in one image: filters, feature maps, Grad-CAM, architecture table.

MODEL is a registered model (models:/<name>@champion), a run's model (runs:/<run id>/model), an
MLflow model folder or a saved model file. Writes PNGs into --out and prints the prediction and
the architecture table (per layer: filter, stride, padding, output shape, receptive field, params).

Examples:
  convtune explain models:/quickstart@champion digit.png
  convtune explain runs:/0123abcd/model shoe.png --out explain-shoe
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="models:/<name>@<alias>, runs:/<id>/model, or a path")
    parser.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG)")
    parser.add_argument(
        "--out", metavar="DIR", help="folder for the pictures (default: explain-<image name>)"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lightning_modules.shapes import traced_table
    from search.describe import architecture_markdown, architecture_rich_table
    from search.gradcam import explain_image
    from search.model_store import load_inference_model, prepare_images
    from search.names import check_output_folder

    out = check_output_folder(args.out or f"explain-{Path(args.image).stem}", "--out")
    model = load_inference_model(args.model)
    images = prepare_images([args.image], model.in_channels, model.image_size)
    rows = traced_table(model.network, model.in_channels, model.image_size)
    explanation = explain_image(model.network, model.normalize(images), images, model.class_names, out, rows)
    (out / "architecture.md").write_text(architecture_markdown(rows))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # the table's columns stay readable in logs and pipes
    console.print(
        architecture_rich_table(rows, title=f"architecture of {model.description.model.get('name')}")
    )
    probability = float(explanation.probabilities[explanation.predicted])
    console.print(
        f"prediction: [bold]{model.class_names[explanation.predicted]}[/bold] ({probability:.1%}); "
        f"Grad-CAM at {explanation.layer}"
    )
    console.print(f"pictures in {out}/: " + ", ".join(path.name for path in explanation.paths))
    return 0
