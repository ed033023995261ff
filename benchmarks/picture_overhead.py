"""How much a trial's pictures cost, as a share of the trial: `python benchmarks/picture_overhead.py`.

Trains one trial of an experiment's base config (as `convtune tune` would, without tracking), then
times `trial_writers()` (architecture table + pictures) on the best epoch's weights. The pictures'
cost does not depend on the number of epochs, so `--epochs` only changes the denominator.

  python benchmarks/picture_overhead.py experiments/quickstart.yaml
  python benchmarks/picture_overhead.py experiments/fashion_mnist.yaml --epochs 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lightning_modules.callbacks import BestWeights
from lightning_modules.training import build_run, create_trainer
from search.experiment.spec import load_experiment
from search.tracking.artifacts import trial_writers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment")
    parser.add_argument("--epochs", type=int, help="override trainer.max_epochs")
    parser.add_argument("--repeat", type=int, default=2, help="times the pictures are drawn (median)")
    args = parser.parse_args()
    overrides = [f"trainer.max_epochs={args.epochs}"] if args.epochs else []
    spec = load_experiment(args.experiment, overrides)
    config = spec.run_config()
    started, cpu_started = time.perf_counter(), time.process_time()
    parts = build_run(config)
    best = BestWeights(spec.search.metric)
    trainer = create_trainer(config.trainer, callbacks=[best], accelerator="cpu")
    trainer.fit(parts.module, datamodule=parts.datamodule)
    trial, trial_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    costs, cpu_costs = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            began, cpu_began = time.perf_counter(), time.process_time()
            for write in trial_writers():
                write(parts, config, best, Path(folder))
            costs.append(time.perf_counter() - began)
            cpu_costs.append(time.process_time() - cpu_began)
    costs.sort()
    cost, cpu_cost = costs[len(costs) // 2], sorted(cpu_costs)[len(cpu_costs) // 2]
    print(
        f"{spec.name}: {config.trainer.max_epochs} epochs, {len(parts.datamodule.val_labels)} val images, "
        f"torch threads {torch.get_num_threads()}: trial {trial:.1f} s, pictures {cost:.2f} s "
        f"(range {costs[0]:.2f} .. {costs[-1]:.2f} s) = {100 * cost / trial:.1f}% of the trial; "
        f"CPU time: trial {trial_cpu:.1f} s, pictures {cpu_cost:.2f} s = {100 * cpu_cost / trial_cpu:.1f}%"
    )


if __name__ == "__main__":
    main()
