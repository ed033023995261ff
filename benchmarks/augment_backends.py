"""Per-image albumentations against batched tensor augmentation: what each costs a trial.

The same experiment (default: the headline's base config, its flip + random shift, 30% of
Fashion-MNIST's training split) trained for `--epochs` with `data.augment_backend` set to
`albumentations` (per image, in the process itself as in a `tune --workers 2` trial on 2 cores) and
to `batched` (whole batches, tensor ops), alternating, `--repeats` times each, with `--threads` torch
threads. Prints, per backend, the median of: producing one epoch of augmented batches alone, and
training (img/s, validation included as a trial does), then the ratios batched / albumentations.

    python benchmarks/augment_backends.py                         # 1 thread, 2 epochs, 3 repeats
    python benchmarks/augment_backends.py --threads 2 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from lightning_modules.data import ImageDataModule
from search.experiment.dotted import config_from_params, parse_override
from search.experiment.spec import load_experiment
from search.reproduce.retrain import train

BACKENDS = ("albumentations", "batched")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", type=Path, nargs="?", default=Path("experiments/fashion_mnist.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = load_experiment(args.experiment)
    extra = dict(parse_override(text) for text in args.overrides)
    loader_seconds: dict[str, list[float]] = {name: [] for name in BACKENDS}
    train_rates: dict[str, list[float]] = {name: [] for name in BACKENDS}
    for _ in range(args.repeats):
        for backend in BACKENDS:
            params = {
                "data.augment_backend": backend,
                "data.num_workers": 0,
                "trainer.max_epochs": args.epochs,
                **extra,
            }
            config = config_from_params(spec, params)
            loader_seconds[backend].append(_one_epoch_of_batches(config))
            started = time.perf_counter()
            parts, *_ = train(config, spec.search.metric, spec.search.resolved_direction)
            seconds = time.perf_counter() - started
            images = parts.datamodule.sizes["train"] * args.epochs
            train_rates[backend].append(images / seconds)
            print(
                f"{backend:>15}: one epoch of batches {loader_seconds[backend][-1]:.2f} s, "
                f"training {train_rates[backend][-1]:,.0f} img/s (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    print(
        f"\nmedians over {args.repeats} repeats, {args.threads} torch thread(s), {args.epochs} epochs each:"
    )
    for backend in BACKENDS:
        print(
            f"{backend:>15}: batches {statistics.median(loader_seconds[backend]):.2f} s/epoch, "
            f"training {statistics.median(train_rates[backend]):,.0f} img/s"
        )
    batches_ratio = statistics.median(loader_seconds["albumentations"]) / statistics.median(
        loader_seconds["batched"]
    )
    training_ratio = statistics.median(train_rates["batched"]) / statistics.median(
        train_rates["albumentations"]
    )
    print(f"batched / albumentations: batches x{batches_ratio:.1f} faster, training x{training_ratio:.2f}")
    return 0


def _one_epoch_of_batches(config: object) -> float:
    """Seconds to draw one epoch of augmented training batches, nothing else."""
    module = ImageDataModule(config.data, config.augment, seed=config.seed)  # type: ignore[attr-defined]
    module.setup()
    loader = module.train_dataloader()
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
