"""Write a trained model as a file that runs without convtune: TorchScript or ONNX.

Both take images (N, C, H, W) of the model's input size and return class probabilities (N, classes);
normalization is inside. TorchScript takes uint8 (0..255) or float (0..1) images and carries
convtune.json (class names, input size) as an extra file; ONNX takes uint8 images (input `images`,
output `probabilities`) and carries the same JSON in its metadata under `convtune`.

Examples:
  convtune export models:/quickstart@champion --format onnx --out quickstart.onnx
  convtune export models:/quickstart@champion --format torchscript --out quickstart.pt
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="models:/NAME@ALIAS, runs:/ID/model, or a path")
    parser.add_argument("--format", required=True, choices=("torchscript", "onnx"), help="file format")
    parser.add_argument("--out", required=True, metavar="PATH", help="file to write")


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.experiment.names import check_output_file
    from search.reproduce.export import export_onnx, export_torchscript
    from search.tracking.model_store import load_inference_model

    out = check_output_file(args.out, "--out")
    model = load_inference_model(args.model)
    write = export_onnx if args.format == "onnx" else export_torchscript
    path = write(model, out)
    shape = "x".join(map(str, (model.in_channels, *model.image_size)))
    print(f"wrote {path} ({args.format}, input N x {shape}, {len(model.class_names)} classes)")
    return 0
