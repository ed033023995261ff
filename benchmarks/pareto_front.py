"""The measured front: reproduced Pareto models against the headline champion, in one table.

For each MODEL (a registered model, `models:/fashion-mnist-pareto@params-17p67k`, a run's model or a
model file): test accuracy on the test split of the data it was trained on, parameters,
multiply-adds, and latency per image measured here at batch 1 and 64 (float32, one CPU thread,
channels_last, the median of 5 measurements). A model kept with test-time augmentation is measured as
it is served: its multiply-adds and latency count every view (flip TTA: two passes). The headline champions of
`experiments/fashion_mnist.yaml` are measured the same way, built from their configs (what a network
costs does not depend on its trained weights), with their test accuracies from docs/performance.md.
Then the issue's targets: a model with at most a tenth of the champion's parameters within one point
of its test accuracy, and one at least 3x faster per image within half a point.

    python benchmarks/pareto_front.py models:/fashion-mnist-pareto@champion \\
        models:/fashion-mnist-pareto@params-17p67k models:/fashion-mnist-pareto@latency-0p53ms
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch import nn

from lightning_modules.latency import measure_latency
from lightning_modules.models.registry import model_from_config
from lightning_modules.models.tracing import traced_table
from search.experiment.spec import load_experiment

REPO = Path(__file__).resolve().parents[1]
SHAPE = (1, 28, 28)
# docs/performance.md: the headline's reproduced champions (two convs per block, 128 hidden units)
HEADLINES = {
    "headline champion (24-48-64)": ([24, 48, 64], 0.9403),
    "headline champion, rerun (24-64-128)": ([24, 64, 128], 0.9401),
}


@dataclass(frozen=True)
class Measured:
    label: str
    test_acc: float
    params: int
    macs: int
    latency_ms: float
    latency_ms_batch: float

    def speedups(self, reference: Measured) -> tuple[float, float]:
        """How many times faster per image than `reference`, at batch 1 and at batch 64."""
        return reference.latency_ms / self.latency_ms, reference.latency_ms_batch / self.latency_ms_batch


def _latency(network: nn.Module, batch: int) -> float:
    runs = [
        measure_latency(
            network, SHAPE, batch_size=batch, channels_last=True, repeats=20, min_repeats=5, max_seconds=1.0
        ).ms_per_image
        for _ in range(5)
    ]
    return statistics.median(runs)


def measure(
    label: str, network: nn.Module, test_acc: float, served: nn.Module | None = None, views: int = 1
) -> Measured:
    """Parameters from `network`; multiply-adds and latency of `served` (default: the network itself),
    which runs it `views` times per image (test-time augmentation)."""
    rows = traced_table(network, SHAPE[0], SHAPE[1:])
    served = network if served is None else served
    return Measured(
        label,
        test_acc,
        sum(row.params for row in rows),
        views * sum(row.macs for row in rows),
        _latency(served, 1),
        _latency(served, 64),
    )


def headline(label: str, channels: list[int], test_acc: float) -> Measured:
    spec = load_experiment(REPO / "experiments" / "fashion_mnist.yaml")
    model = spec.model.model_copy(update={"channels": channels, "hidden": [128], "convs_per_block": 2})
    network = model_from_config(model, in_channels=1, num_classes=10, image_size=SHAPE[1:])
    return measure(label, network, test_acc)


def registered(uri: str) -> Measured:
    from search.reproduce.evaluate import evaluate_on_dataset
    from search.tracking.model_store import load_inference_model

    evaluation, _ = evaluate_on_dataset(uri)
    model = load_inference_model(uri)
    views = 1 + len(model.tta)
    label = f"{uri} (TTA: {views} views)" if model.tta else uri
    return measure(label, model.network, evaluation.accuracy, model.served_network(), views)


def table(rows: list[Measured], reference: Measured) -> list[str]:
    lines = [
        "| model | test acc | params | multiply-adds | ms/image, batch 1 | ms/image, batch 64 | "
        "params / champion's | speed-up, batch 1 / 64 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        one, batch = row.speedups(reference)
        speed = f"{one:.1f}x / {batch:.1f}x"
        lines.append(
            f"| {row.label} | {row.test_acc:.4f} | {row.params:,} | {row.macs:,} | {row.latency_ms:.3f} | "
            f"{row.latency_ms_batch:.4f} | {row.params / reference.params:.3f} | {speed} |"
        )
    return lines


def verdicts(rows: list[Measured], reference: Measured) -> list[str]:
    def names(found: list[Measured]) -> str:
        return ", ".join(r.label for r in found) or "none"

    close = [r for r in rows if r.test_acc >= reference.test_acc - 0.005]
    small = [r for r in rows if r.params <= reference.params / 10 and r.test_acc >= reference.test_acc - 0.01]
    return [
        f"against {reference.label} ({reference.params:,} params, test {reference.test_acc:.4f}):",
        f"  <= 1/10 of its parameters within one point: {names(small)}",
        f"  >= 3x faster per image at batch 1 within half a point: "
        f"{names([r for r in close if r.speedups(reference)[0] >= 3])}",
        f"  >= 3x faster per image at batch 64 within half a point: "
        f"{names([r for r in close if r.speedups(reference)[1] >= 3])}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", metavar="MODEL")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()}")
    references = [headline(label, channels, acc) for label, (channels, acc) in HEADLINES.items()]
    models = [registered(uri) for uri in args.models]
    print("\n".join(table([*references, *models], references[0])))
    for reference in references:
        print("\n".join(verdicts(models, reference)))
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
