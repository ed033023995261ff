"""The measured front: reproduced Pareto models against the headline champion, in one table.

For each MODEL (a registered model, `models:/fashion-mnist-pareto@params-17p67k`, a run's model or a
model file): test accuracy on the test split of the data it was trained on, parameters,
multiply-adds, and latency per image measured here at batch 1 and 64 (float32, one CPU thread,
channels_last; every model timed in turn in each of `--rounds` rounds, each round's figure the median of 5
measurements, and speed-ups the medians of the rounds' ratios). A model kept with test-time augmentation is
measured as it is served: its multiply-adds and latency count every view (flip TTA: two passes). The headline
champions of `experiments/fashion_mnist.yaml` are measured the same way, built from their configs (what a
network costs does not depend on its trained weights), with their test accuracies from docs/performance.md.
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
class Candidate:
    """A network to time: `served` runs it `views` times per image (test-time augmentation)."""

    label: str
    test_acc: float
    params: int
    macs: int
    served: nn.Module


@dataclass(frozen=True)
class Measured:
    label: str
    test_acc: float
    params: int
    macs: int
    latency_ms: float  # medians over the rounds
    latency_ms_batch: float
    speedup: tuple[float, float] = (1.0, 1.0)  # against `timed_against`: medians of the rounds' ratios
    timed_against: str = ""

    def speedups(self, reference: Measured) -> tuple[float, float]:
        """How many times faster per image than `reference`, at batch 1 and at batch 64."""
        if reference.label == self.timed_against:
            return self.speedup
        return reference.latency_ms / self.latency_ms, reference.latency_ms_batch / self.latency_ms_batch


def _latency(network: nn.Module, batch: int) -> float:
    runs = [
        measure_latency(
            network, SHAPE, batch_size=batch, channels_last=True, repeats=20, min_repeats=5, max_seconds=1.0
        ).ms_per_image
        for _ in range(5)
    ]
    return statistics.median(runs)


def candidate(
    label: str, network: nn.Module, test_acc: float, served: nn.Module | None = None, views: int = 1
) -> Candidate:
    """Parameters from `network`; multiply-adds of `served` (default: the network itself)."""
    rows = traced_table(network, SHAPE[0], SHAPE[1:])
    params = sum(row.params for row in rows)
    macs = views * sum(row.macs for row in rows)
    return Candidate(label, test_acc, params, macs, network if served is None else served)


def interleaved(candidates: list[Candidate], rounds: int) -> list[Measured]:
    """Each candidate timed in every round, in turn with the others, so that a slow spell of a busy
    machine (one measurement here varies up to 2x) falls on all of them alike; speed-ups against the
    first candidate are the medians of the rounds' ratios."""
    times: list[list[tuple[float, float]]] = [[] for _ in candidates]
    for _ in range(rounds):
        for c, timed in zip(candidates, times, strict=True):
            timed.append((_latency(c.served, 1), _latency(c.served, 64)))
    reference = times[0]

    def ratio(timed: list[tuple[float, float]], batch: int) -> float:
        return statistics.median(r[batch] / t[batch] for r, t in zip(reference, timed, strict=True))

    return [
        Measured(
            c.label,
            c.test_acc,
            c.params,
            c.macs,
            statistics.median(t[0] for t in timed),
            statistics.median(t[1] for t in timed),
            (ratio(timed, 0), ratio(timed, 1)),
            candidates[0].label,
        )
        for c, timed in zip(candidates, times, strict=True)
    ]


def headline_network(channels: list[int]) -> nn.Module:
    spec = load_experiment(REPO / "experiments" / "fashion_mnist.yaml")
    model = spec.model.model_copy(update={"channels": channels, "hidden": [128], "convs_per_block": 2})
    return model_from_config(model, in_channels=1, num_classes=10, image_size=SHAPE[1:]).eval()


def headlines() -> list[Candidate]:
    """The headline champions, built from their configs; the first is the reference."""
    return [candidate(label, headline_network(ch), acc) for label, (ch, acc) in HEADLINES.items()]


def registered(uri: str) -> Candidate:
    from search.reproduce.evaluate import evaluate_on_dataset
    from search.tracking.model_store import load_inference_model

    evaluation, _ = evaluate_on_dataset(uri)
    model = load_inference_model(uri)
    views = 1 + len(model.tta)
    label = f"{uri} (TTA: {views} views)" if model.tta else uri
    return candidate(label, model.network, evaluation.accuracy, model.served_network(), views)


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
    parser.add_argument(
        "--rounds", type=int, default=8, help="rounds of timing, every model once per round (default 8)"
    )
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()}")
    measured = interleaved([*headlines(), *(registered(uri) for uri in args.models)], args.rounds)
    references, models = measured[: len(HEADLINES)], measured[len(HEADLINES) :]
    print("\n".join(table(measured, references[0])))
    for reference in references:
        print("\n".join(verdicts(models, reference)))
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
