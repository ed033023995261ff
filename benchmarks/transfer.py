"""Does pre-training help with little data? Fine-tuned vs from scratch, same subset and budget.

1. Pre-trains the convnet of `experiments/transfer_pretrain_fashion.yaml` (six Fashion-MNIST
   classes) with its base config, tests it on their test split and saves its state dict where the
   fine-tuning experiment looks for it (`model.weights`); an existing file is reused unless
   `--retrain`.
2. Trains the fine-tuning experiment's base config (`--finetune`, default
   `experiments/transfer_finetune_fashion.yaml`: the four other classes, 94 labelled images) in
   four arms that differ only in how they start and what they train: from scratch, fine-tuning all
   layers from the pre-trained weights, a linear probe (`freeze: backbone`) and a frozen backbone
   unfrozen after a third of the epochs.
   Every arm gets the same epochs and, for seed s, the same labelled subset, validation split and
   head initialization; the weights of the best validation epoch are tested on the test split
   (never seen in training or selection).
3. Prints the table: test accuracy mean ± std over the seeds, and each seed's value.

    python benchmarks/transfer.py                       # 10-20 min on 2 busy CPU cores
    python benchmarks/transfer.py --arms 0 1            # only from scratch and fine-tune all layers
    python benchmarks/transfer.py --finetune experiments/transfer_finetune_digits.yaml
    python benchmarks/transfer.py --seeds 0 --epochs 3 --pretrain-epochs 1 --retrain   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from lightning_modules.callbacks import BestWeights  # noqa: E402
from lightning_modules.config import RunConfig  # noqa: E402
from lightning_modules.training import RunParts, build_run, create_trainer  # noqa: E402
from search.experiment.dotted import config_from_params  # noqa: E402
from search.experiment.spec import load_experiment  # noqa: E402
from search.study.weights import resolve_weights  # noqa: E402

PRETRAIN = REPO / "experiments" / "transfer_pretrain_fashion.yaml"
FINETUNE = REPO / "experiments" / "transfer_finetune_fashion.yaml"

# arm name -> changes to the fine-tuning experiment's model/optim (None: keep the file's weights)
ARMS: dict[str, dict[str, Any]] = {
    "from scratch": {"model.weights": "", "model.freeze": "none"},
    "fine-tune all layers": {"model.freeze": "none"},
    "linear probe (freeze: backbone)": {"model.freeze": "backbone"},
    "freeze: backbone, unfreeze_after": {"model.freeze": "backbone", "model.unfreeze_after": "third"},
}


@dataclass
class Result:
    test_acc: float
    best_epoch: int
    seconds: float


def train_and_test(config: RunConfig) -> tuple[RunParts, Result]:
    """Trains `config`, restores its best validation epoch and measures the test split."""
    started = time.perf_counter()
    parts = build_run(config, weights_resolver=resolve_weights)
    best = BestWeights("val/acc", "max")
    trainer = create_trainer(config.trainer, callbacks=[best], accelerator="cpu")
    trainer.fit(parts.module, datamodule=parts.datamodule)
    best.restore(parts.module)
    scores = trainer.test(parts.module, datamodule=parts.datamodule, verbose=False)
    seconds = time.perf_counter() - started
    return parts, Result(float(scores[0]["test/acc"]), int(best.best_epoch or 0), seconds)


def pretrain(path: Path, epochs: int | None, retrain: bool) -> None:
    if path.is_file() and not retrain:
        print(f"pre-trained weights: {path} (reused; --retrain to train them again)")
        return
    overrides = [f"trainer.max_epochs={epochs}"] if epochs else []
    config = load_experiment(PRETRAIN, overrides).run_config()
    print(
        f"pre-training on {config.data.dataset} classes {config.data.classes}, "
        f"{config.trainer.max_epochs} epochs ...",
        flush=True,
    )
    parts, result = train_and_test(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(parts.module.model.state_dict(), path)
    print(
        f"pre-trained: test acc {result.test_acc:.4f} on {parts.datamodule.sizes['test']} "
        f"images, {result.seconds:.0f} s; saved {path}",
        flush=True,
    )


def arm_config(finetune: Path, changes: dict[str, Any], seed: int, epochs: int | None) -> RunConfig:
    overrides = [f"seed={seed}"] + ([f"trainer.max_epochs={epochs}"] if epochs else [])
    spec = load_experiment(finetune, overrides)
    params: dict[str, Any] = {}
    for key, value in changes.items():
        if value == "third":
            value = max(1, spec.trainer.max_epochs // 3)
        params[key] = None if value == "" else value
    return config_from_params(spec, params)


def summarize(name: str, results: list[Result]) -> str:
    accuracies = [r.test_acc for r in results]
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    seeds = " ".join(f"{a:.3f}" for a in accuracies)
    seconds = statistics.mean(r.seconds for r in results)
    return f"| {name} | {statistics.mean(accuracies):.3f} ± {std:.3f} | {seeds} | {seconds:.1f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetune", type=Path, default=FINETUNE, help="the fine-tuning experiment")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", type=int, nargs="+", default=None, help="indices of the arms to run")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the file's)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="default: the file's")
    parser.add_argument("--retrain", action="store_true", help="pre-train again even if the weights exist")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.finetune = args.finetune.resolve()
    os.chdir(REPO)  # the experiment's weights path is relative to the repository root
    weights = Path(load_experiment(args.finetune).model.weights or "")
    started = time.perf_counter()
    pretrain(weights, args.pretrain_epochs, args.retrain)
    arms = {
        name: changes
        for i, (name, changes) in enumerate(ARMS.items())
        if args.arms in (None, []) or i in args.arms
    }
    results: dict[str, list[Result]] = {name: [] for name in arms}
    for seed in args.seeds:
        for name, changes in arms.items():
            config = arm_config(args.finetune, changes, seed, args.epochs)
            parts, result = train_and_test(config)
            results[name].append(result)
            print(
                f"seed {seed} | {name}: test acc {result.test_acc:.4f} (best epoch {result.best_epoch}, "
                f"{result.seconds:.1f} s)",
                flush=True,
            )
    sizes = parts.datamodule.sizes
    print(
        f"\n{config.data.dataset} classes {config.data.classes or 'all'}: {sizes['train']} labelled "
        f"training images, {sizes['val']} validation, {sizes['test']} test; "
        f"{config.trainer.max_epochs} epochs; seeds {args.seeds}\n"
    )
    print("| start | test acc (mean ± std) | per seed | s / run |")
    print("| --- | --- | --- | --- |")
    for name, arm in results.items():
        print(summarize(name, arm))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({k: [r.__dict__ for r in v] for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
