"""Accuracy of a trained model on a dataset's held-out test split (default: the one it was trained on).

MODEL: models:/<study>@champion, runs:/<run id>/model, an MLflow model folder, or a saved model file.
The test split is the same one `reproduce` tested on (for digits and image folders without test/,
a seeded hold-out that the search never reads).

Examples:
  convtune evaluate models:/quickstart@champion
  convtune evaluate models:/fashion@champion --dataset fashion-mnist --per-class
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="models:/NAME@ALIAS, runs:/ID/model, or a path")
    parser.add_argument(
        "--dataset", metavar="NAME", help="dataset whose test split to use (default: the model's)"
    )
    parser.add_argument("--root", metavar="DIR", help="where the dataset's files are (data.root)")
    parser.add_argument("--per-class", action="store_true", help="also print the accuracy of every class")


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.reproduce.evaluate import evaluate_on_dataset

    evaluation, dataset = evaluate_on_dataset(args.model, args.dataset, args.root)
    print(f"{dataset} test split: accuracy {evaluation.accuracy:.4f} ({evaluation.total} images)")
    if args.per_class:
        for name, accuracy in evaluation.per_class.items():
            print(f"  {name}\t{'-' if accuracy is None else f'{accuracy:.4f}'}")
    return 0
