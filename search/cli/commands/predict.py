"""Classify image files with a trained model: one line per image, the class and its probability.

MODEL: models:/<study>@champion, runs:/<run id>/model, an MLflow model folder, or a saved model file.
Images (PNG, JPEG, any size) are converted to the model's channels (grayscale or RGB), resized to its
input size and normalized as in training.

Examples:
  convtune predict models:/quickstart@champion digit.png shirt.jpg
  convtune predict models:/quickstart@champion *.png --top 3
"""

from __future__ import annotations

import argparse

from search.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="models:/NAME@ALIAS, runs:/ID/model, or a path")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--top", type=int, default=1, metavar="K", help="print the K most likely classes")


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.reproduce.images import prepare_images
    from search.tracking.model_store import load_inference_model

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, but got {args.top}.")
    model = load_inference_model(args.model)
    images = prepare_images(args.images, model.in_channels, model.image_size)
    probabilities = model.predict(images)
    top = min(args.top, len(model.class_names))
    values, indices = probabilities.topk(top, dim=1)
    for path, row_values, row_indices in zip(args.images, values.tolist(), indices.tolist(), strict=True):
        guesses = "  ".join(
            f"{model.class_names[i]}\t{p:.4f}" for p, i in zip(row_values, row_indices, strict=True)
        )
        print(f"{path}\t{guesses}")
    return 0
