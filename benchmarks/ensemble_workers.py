"""Ensemble members one after another against `--workers N` at once: wall seconds of `convtune reproduce
--top-k K`, same study, same members.

Tunes a short study of EXPERIMENT in a scratch folder (`--tune-seconds`, 2 workers), then times
`convtune reproduce EXPERIMENT --top-k K --epochs E --no-register` with `--workers 1` and with
`--workers N`, alternating which goes first in each repeat, and prints each arm's seconds, the
members' validation accuracies and the ratio. Run it on an otherwise idle machine.

    python benchmarks/ensemble_workers.py --top-k 2 --epochs 2 --workers 2
    python benchmarks/ensemble_workers.py --smoke        # digits, a minute: checks the script only
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONVTUNE = [sys.executable, "-m", "search.cli"]


def _run(args: list[str], folder: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [*CONVTUNE, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"convtune {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def _members(output: str) -> list[str]:
    """`member 0: trial 20, weight 0.5, validation accuracy 0.9123, ...` -> ['trial 20: 0.9123', ...]."""
    found = re.findall(r"member \d+: trial (\d+).*?validation accuracy ([0-9.]+)", output)
    return [f"trial {trial}: {value}" for trial, value in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", type=Path, default=REPO / "experiments" / "fashion_mnist.yaml")
    parser.add_argument("--tune-seconds", type=int, default=240)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--smoke", action="store_true", help="digits (experiments/quickstart.yaml), tiny budgets"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.experiment, args.tune_seconds, args.epochs = REPO / "experiments" / "quickstart.yaml", 30, 2
    folder = Path(tempfile.mkdtemp(prefix="convtune-ensemble-workers-"))
    try:
        experiment = shutil.copy(args.experiment, folder / args.experiment.name)
        tune = ["tune", experiment, "--devices", "cpu", "--workers", "2", "--quiet"]
        seconds, _ = _run([*tune, "--set", f"search.timeout={args.tune_seconds}"], folder)
        print(f"tuned {args.experiment.name} for {seconds:.0f} s; load average {os.getloadavg()}")
        common = [
            "reproduce",
            experiment,
            "--top-k",
            str(args.top_k),
            "--epochs",
            str(args.epochs),
            "--no-register",
        ]
        timings: dict[int, list[float]] = {1: [], args.workers: []}
        for repeat in range(args.repeats):
            order = [1, args.workers] if repeat % 2 == 0 else [args.workers, 1]
            for workers in order:
                seconds, output = _run([*common, "--workers", str(workers)], folder)
                timings[workers].append(seconds)
                print(f"--workers {workers}: {seconds:.1f} s; members {', '.join(_members(output))}")
        one, many = statistics.median(timings[1]), statistics.median(timings[args.workers])
        print(f"median: --workers 1 {one:.1f} s, --workers {args.workers} {many:.1f} s: x{one / many:.2f}")
        print(f"load average {os.getloadavg()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
