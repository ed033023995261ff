"""Trials finished per minute with 1 and 2 CPU workers (and 1 worker per GPU when there are GPUs).

Each arm runs `convtune tune` as a user would (a fresh folder, the embedded journal storage and a
SQLite MLflow store) on the same experiment with a fixed number of trials. The rate counts finished
trials over the span from the first trial's start to the last one's end, so process start-up is left
out of it and reported apart (wall seconds). A second 1-worker arm runs with one torch thread
(OMP_NUM_THREADS=1), like each of the 2 workers, to separate the effect of threads from that of
processes. The machine's load average is printed with each arm,
since a shared machine makes every figure smaller. The default experiment loads its batches in the
worker itself (`data.num_workers: 0`), so that the arms differ only in their number of workers: with
`auto`, one worker would start DataLoader processes for every trial and the others would not.

    python benchmarks/scaling.py                                   # digits, 8 trials of 3 epochs per arm
    python benchmarks/scaling.py --trials 12 --set trainer.max_epochs=5
    python benchmarks/scaling.py experiments/fashion_mnist.yaml --set data.train_fraction=0.1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_modules.machine import available_cpus  # noqa: E402

DIGITS = {
    "name": "scaling",
    "seed": 0,
    "data": {"dataset": "digits", "val_fraction": 0.2, "batch_size": 64, "num_workers": 0},
    "model": {"name": "convnet", "channels": [16, 32], "kernel_size": 3},
    "optim": {"name": "adamw", "lr": 3e-3},
    "trainer": {"max_epochs": 3},
    "search": {
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "artifacts": False,
        "space": {"optim.lr": {"float": [1e-3, 1e-2], "log": True}},
    },
}


@dataclass
class Arm:
    label: str
    args: list[str]
    workers: int
    env: dict[str, str] | None = None
    finished: int = 0
    span: float = 0.0
    wall: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.finished / self.span if self.span > 0 else 0.0


def arms(cuda_count: int) -> list[Arm]:
    chosen = [
        Arm("1 CPU worker", ["--devices", "cpu", "--workers", "1"], 1),
        Arm("1 CPU worker, 1 thread", ["--devices", "cpu", "--workers", "1"], 1, {"OMP_NUM_THREADS": "1"}),
        Arm("2 CPU workers", ["--devices", "cpu", "--workers", "2"], 2),
    ]
    if cuda_count:
        chosen.append(Arm("1 GPU", ["--devices", "0"], 1))
    if cuda_count > 1:
        ids = ",".join(str(i) for i in range(cuda_count))
        chosen.append(Arm(f"{cuda_count} GPUs (1 worker each)", ["--devices", ids], cuda_count))
    return chosen


def run_arm(arm: Arm, experiment: dict, trials: int, overrides: list[str]) -> Arm:
    import optuna
    from optuna.trial import TrialState

    from search.study.storage import open_storage

    with tempfile.TemporaryDirectory(prefix="convtune-scaling-") as folder:
        root = Path(folder)
        (root / "mlflow.yml").write_text(
            "tracking_uri: sqlite:///mlflow.db\nartifact_location: mlartifacts\n"
        )
        (root / "exp.yaml").write_text(yaml.safe_dump(experiment, sort_keys=False))
        command = [
            sys.executable,
            "-m",
            "search.cli",
            "tune",
            "exp.yaml",
            "--quiet",
            "--n-trials",
            str(trials),
        ]
        command += arm.args + [item for key in overrides for item in ("--set", key)]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "NO_ALBUMENTATIONS_UPDATE": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.update(arm.env or {})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        started = time.perf_counter()
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        arm.wall = time.perf_counter() - started
        arm.load = os.getloadavg()
        if done.returncode != 0:
            raise SystemExit(f"{arm.label}: convtune tune failed:\n{done.stderr[-2000:]}")
        storage = open_storage(str(root / ".convtune" / "optuna.journal")).storage
        study = optuna.load_study(study_name=experiment["name"], storage=storage)
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        arm.finished = len(finished)
        first = min(t.datetime_start for t in finished)
        last = max(t.datetime_complete for t in finished)
        arm.span = (last - first).total_seconds()
    return arm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", nargs="?", help="experiment YAML (default: a digits convnet)")
    parser.add_argument("--trials", type=int, default=8, help="trials per arm (default 8)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    import torch

    experiment = yaml.safe_load(Path(args.experiment).read_text()) if args.experiment else dict(DIGITS)
    experiment["name"] = "scaling"
    cores = available_cpus()
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"{cores} CPU cores, {cuda} GPUs; load average before: {_load(os.getloadavg())}")
    print(f"{args.trials} trials per arm of {args.experiment or 'digits convnet'} {' '.join(args.overrides)}")
    results = []
    for arm in arms(cuda):
        results.append(run_arm(arm, experiment, args.trials, args.overrides))
        done = results[-1]
        print(
            f"  {done.label:<26} {done.finished} trials in {done.span:6.1f} s -> {done.per_minute:6.2f}/min "
            f"(wall {done.wall:.0f} s with start-up; load {_load(done.load)})",
            flush=True,
        )
    base = results[0].per_minute
    print("\ntrials per minute, and the ratio to 1 CPU worker:")
    for arm in results:
        ratio = arm.per_minute / base if base else float("nan")
        print(f"  {arm.label:<26} {arm.per_minute:6.2f}/min   x{ratio:.2f}")
    one, one_thread, two = (arm.per_minute for arm in results[:3])
    if one and one_thread and two:
        ceiling = 2 * one_thread / one
        print(
            f"one worker gains x{one / one_thread:.2f} from its second thread, so two 1-thread workers can "
            f"reach at most x{ceiling:.2f} of it; measured x{two / one:.2f} ({two / one / ceiling:.0%})"
        )


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
