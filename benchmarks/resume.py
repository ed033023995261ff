"""What resuming saves: a 10-epoch Fashion-MNIST trial killed after epoch 7, then retried.

Three arms, each in its own folder, each one trial of the headline experiment
(`experiments/fashion_mnist.yaml`, `--set trainer.max_epochs=10`, the same sampled params: a fresh
study with the same seed draws the same first trial):

1. uninterrupted: `convtune tune` runs the trial to the end;
2. resume: `convtune tune` is SIGKILLed a moment into epoch 8 (its checkpoint holds epoch 7), then
   the same command again: the retry continues with epoch 8;
3. restart (today's behaviour, `--set search.checkpoints=false`): killed the same way; the retry
   trains all 10 epochs again.

Prints, per arm, the retry's seconds (Optuna's trial duration), the second command's wall seconds,
and the total from the first start to the end (the killed command included), with the retry's
first epoch and final validation accuracy (resume must equal uninterrupted on CPU when
deterministic).

    python benchmarks/resume.py                     # three 10-epoch trials: ~10 min on 2 idle cores
    python benchmarks/resume.py --smoke             # scikit-learn digits, seconds: checks the script
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cli_runs import REPO, arm_folder, digits_experiment, load, read_experiment, run, start

EPOCHS = 10
KILL_AFTER = 7


@dataclass
class Arm:
    name: str
    retry_seconds: float
    command_seconds: float
    total_seconds: float
    resumed_at: int
    value: float


def experiment(smoke: bool) -> dict[str, Any]:
    if smoke:
        return digits_experiment("resume", EPOCHS, {"optim.lr": {"float": [1e-3, 1e-2], "log": True}})
    raw = read_experiment(REPO / "experiments" / "fashion_mnist.yaml")
    raw["name"] = "resume"
    raw["trainer"]["max_epochs"] = EPOCHS
    raw["search"] |= {"n_trials": 1, "artifacts": False}
    raw["search"].pop("timeout", None)
    return raw


def _kill_after_epoch(folder: Path, args: list[str]) -> None:
    """Starts `convtune tune`, SIGKILLs it once the trial reported epoch KILL_AFTER (and saved it)."""
    process = start(folder, args)
    while process.poll() is None:
        study = load(folder, "resume")
        running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"] if study else []
        if running and len(running[0].intermediate_values) >= KILL_AFTER:
            time.sleep(0.5)  # into epoch KILL_AFTER + 1: its checkpoint is written right after the report
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the trial ended before epoch {KILL_AFTER} was reported: {process.communicate()[1][-2000:]}"
    )


def run_arm(root: Path, name: str, raw: dict[str, Any], extra: list[str]) -> Arm:
    folder = arm_folder(root, name, raw)
    args = ["tune", "exp.yaml", "--devices", "cpu", "--quiet", "--no-artifacts", *extra]
    started = time.perf_counter()
    if name != "uninterrupted":
        _kill_after_epoch(folder, args)
    command_seconds, _err = run(folder, args)
    total = time.perf_counter() - started
    study = load(folder, "resume")
    assert study is not None
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    if len(done) != 1:
        raise RuntimeError(
            f"{name}: expected one complete trial, got {[t.state.name for t in study.get_trials()]}"
        )
    trial = done[0]
    seconds = trial.duration.total_seconds() if trial.duration else float("nan")
    return Arm(
        name, seconds, command_seconds, total, int(trial.user_attrs.get("resumed_at_epoch", 0)), trial.value
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="digits instead of Fashion-MNIST (checks the script)"
    )
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    raw = experiment(args.smoke)
    with tempfile.TemporaryDirectory(prefix="convtune-resume-") as temporary:
        root = args.keep or Path(temporary)
        arms = [
            run_arm(root, "uninterrupted", raw, []),
            run_arm(root, "resume", raw, []),
            run_arm(root, "restart", raw, ["--set", "search.checkpoints=false"]),
        ]
    print(
        f"one {EPOCHS}-epoch trial, killed after epoch {KILL_AFTER} (resume, restart) or not (uninterrupted)"
    )
    print(
        f"{'arm':<14}{'retry s':>9}{'2nd command s':>15}{'total s':>9}{'starts at epoch':>17}{'val/acc':>9}"
    )
    for arm in arms:
        first = arm.resumed_at + 1
        print(
            f"{arm.name:<14}{arm.retry_seconds:>9.1f}{arm.command_seconds:>15.1f}{arm.total_seconds:>9.1f}"
            f"{first:>17}{arm.value:>9.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
