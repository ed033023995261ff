"""Does a warm start pay? The headline's narrow study, cold and warm-started, with the same budget.

1. Runs the source study (`--source`, default `experiments/fashion_mnist_explore.yaml`) for its
   `--source-timeout` seconds, as yesterday's study would have been run.
2. Runs the target study (`--target`, default `experiments/fashion_mnist.yaml`) twice with the same
   `--timeout` and workers: cold, and with `--warm-start` from the source study (its storage given
   by `--warm-storage`).
3. Prints what the warm start added and skipped (by reason), each arm's final best, and the seconds
   each arm took (from its first trial's start, its own trials only) to reach the cold arm's final
   best: the warm arm's figure against the moment the cold arm itself found it.

A trial of the source fits the target only if its values (searched, or fixed by the source) lie
in the target's ranges and it searched nothing the target fixes at another value (docs/resume.md).
The explore file's net has 2 blocks and the headline's 3, so none of its trials fit the headline;
run the script with `--source` to see how many of a source's trials fit before reading the times.

    python benchmarks/warm_start.py                                  # 15 min source + 2 x --timeout
    python benchmarks/warm_start.py --timeout 900 --workers 2
    python benchmarks/warm_start.py --source experiments/fashion_mnist.yaml --source-timeout 600
    python benchmarks/warm_start.py --smoke                          # digits, about a minute
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna

from benchmarks.cli_runs import REPO, arm_folder, digits_experiment, load, read_experiment, run


@dataclass
class Arm:
    name: str
    best: float | None
    curve: list[tuple[float, float]]  # (seconds since the arm's first trial started, best so far)
    line: str = ""

    def reached(self, target: float, maximize: bool) -> float | None:
        for seconds, best in self.curve:
            if (best >= target) if maximize else (best <= target):
                return seconds
        return None


def best_curve(study: optuna.Study) -> list[tuple[float, float]]:
    """Best-so-far of the study's own trials (a warm start's priors left out), by completion time."""
    own = [t for t in study.get_trials(deepcopy=False) if "warm_start_of" not in t.user_attrs]
    starts = [t.datetime_start for t in own if t.datetime_start]
    done = sorted(
        (t for t in own if t.state.name == "COMPLETE" and t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )
    if not starts or not done:
        return []
    origin = min(starts)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    curve, best = [], None
    for trial in done:
        value = trial.value
        if best is None or (value > best if maximize else value < best):
            best = value
            curve.append(((trial.datetime_complete - origin).total_seconds(), best))
    return curve


def experiments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    if args.smoke:
        wide = {
            "optim.lr": {"float": [1e-4, 1e-1], "log": True},
            "model.dropout": {"float": [0.0, 0.5]},
        }
        narrow = {
            "optim.lr": {"float": [1e-3, 3e-2], "log": True},
            "model.dropout": {"float": [0.0, 0.3]},
        }
        return (
            digits_experiment("explore", 3, wide, n_trials=12),
            digits_experiment("narrow", 3, narrow, n_trials=200),
        )
    return read_experiment(args.source), read_experiment(args.target)


def tune(folder: Path, name: str, timeout: float, workers: int, extra: list[str]) -> tuple[optuna.Study, str]:
    args = ["tune", "exp.yaml", "--devices", "cpu", "--workers", str(workers), "--quiet", "--no-artifacts"]
    _seconds, err = run(folder, [*args, "--timeout", str(timeout), "--n-trials", "100000", *extra])
    study = load(folder, name)
    assert study is not None
    return study, err


def report(cold: optuna.Study, warm: optuna.Study, err: str, args: argparse.Namespace) -> None:
    found = re.search(r"warm start from .*?(enqueued first\.|priors\)\.)", " ".join(err.split()))
    line = found.group(0) if found else ""
    arms = [Arm("cold", None, best_curve(cold)), Arm("warm", None, best_curve(warm), line)]
    maximize = cold.direction == optuna.study.StudyDirection.MAXIMIZE
    for arm in arms:
        arm.best = arm.curve[-1][1] if arm.curve else None
    print(line or "warm start: no report found in the warm arm's output")
    target_value = arms[0].best
    print(f"same budget per arm: {args.timeout:.0f} s, {args.workers} worker(s)")
    for arm in arms:
        own = [
            t
            for t in (cold if arm.name == "cold" else warm).get_trials()
            if "warm_start_of" not in t.user_attrs
        ]
        reached = arm.reached(target_value, maximize) if target_value is not None else None
        shown = f"reached after {reached:.0f} s" if reached is not None else "not reached"
        best = f"{arm.best:.4f}" if arm.best is not None else "none"
        print(f"{arm.name:>5}: {len(own)} trials, final best {best}, cold arm's final best {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=REPO / "experiments" / "fashion_mnist_explore.yaml")
    parser.add_argument("--target", type=Path, default=REPO / "experiments" / "fashion_mnist.yaml")
    parser.add_argument("--source-timeout", type=float, default=900.0, help="seconds of the source study")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds of each target arm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="digits, tiny budgets (checks the script)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.source_timeout, args.timeout, args.workers = 20.0, 20.0, 1
    source, target = experiments(args)
    with tempfile.TemporaryDirectory(prefix="convtune-warm-") as temporary:
        root = args.keep or Path(temporary)
        source_folder = arm_folder(root, "source", source)
        tune(source_folder, source["name"], args.source_timeout, args.workers, [])
        journal = str(source_folder / ".convtune" / "optuna.journal")
        cold, _ = tune(arm_folder(root, "cold", target), target["name"], args.timeout, args.workers, [])
        warm_args = ["--warm-start", source["name"], "--warm-storage", journal]
        warm, err = tune(
            arm_folder(root, "warm", target), target["name"], args.timeout, args.workers, warm_args
        )
        report(cold, warm, err, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
