"""How long `convtune` commands take to answer, and a worker pool to start its first trial.

For each command, the median wall time of `--repeats` runs (`python -m search.cli ...`, a fresh
interpreter each time, run from a temporary folder), beside the median bare import time of the
libraries that the command really needs (`python -c "import torch, optuna, ..."`): what is left above
that figure is convtune's own work and whatever it imports without needing it.

    convtune --help
    convtune check   EXP                       (needs torch, optuna, pydantic; albumentations: EXP augments)
    convtune status  EXP                       (needs optuna, pydantic, rich)
    convtune predict models:/NAME@champion one.png   (needs torch, mlflow, PIL)
    convtune tune    EXP --devices cpu --workers 2   the time from the command's start to the
                                               start of its first trial (from the study's records)

The setup (not timed) trains one trial of a digits experiment like experiments/quickstart.yaml and
registers it with `convtune reproduce` (one epoch), so that `status` and `predict` have something
to show. The pool is timed twice per repeat: in a fresh folder (MLflow creates its SQLite store
first, which is most of the wait on a slow disk) and in a folder whose stores exist (a rerun).
`--compare-process` adds the pool with `CONVTUNE_WORKER_START=process` (fresh worker processes, the
way workers started before the forkserver). The machine's load average is printed before and after:
on a shared machine, every figure grows with it.

    python benchmarks/startup.py                     # 5 repeats (a few minutes on 2 cores)
    python benchmarks/startup.py --repeats 1         # a smoke run
    python benchmarks/startup.py --compare-process --keep /tmp/startup
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXPERIMENT = {
    "name": "startup",
    "seed": 0,
    "data": {"dataset": "digits", "val_fraction": 0.2, "batch_size": 64, "num_workers": 0},
    "augment": [{"Affine": {"translate_percent": [-0.08, 0.08], "p": 0.5}}],
    "model": {"name": "convnet", "channels": [16, 32], "kernel_size": 3, "padding": "same"},
    "optim": {"name": "adamw", "lr": 3e-3},
    "trainer": {"max_epochs": 2},
    "search": {
        "n_trials": 4,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "artifacts": False,
        "space": {"optim.lr": {"float": [1e-3, 1e-2], "log": True}},
    },
}
NEEDS = {
    "--help": "",
    "check": "torch, optuna, pydantic, albumentations",
    "status": "optuna, pydantic, rich.table",
    "predict": "torch, mlflow, PIL.Image",
    "pool": "torch, pytorch_lightning, mlflow, optuna",
}


@dataclass
class Row:
    label: str
    seconds: list[float]
    needs: str
    bare: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "NO_ALBUMENTATIONS_UPDATE": "1", **(extra or {})})
    return env


def timed(args: Sequence[str], folder: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env or environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def convtune(*args: str) -> list[str]:
    return [sys.executable, "-m", "search.cli", *args]


def bare_import(modules: str, folder: Path, repeats: int) -> float:
    code = f"import {modules}" if modules else "pass"
    return statistics.median(timed([sys.executable, "-c", code], folder) for _ in range(repeats))


def set_up(folder: Path) -> None:
    """One trained trial and a registered champion in `folder` (not timed)."""
    (folder / "exp.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    timed(convtune("tune", "exp.yaml", "--n-trials", "1", "--quiet"), folder)
    timed(convtune("reproduce", "exp.yaml", "--set", "trainer.max_epochs=1"), folder)
    from PIL import Image

    Image.new("L", (8, 8), 128).save(folder / "one.png")


def first_trial_after(folder: Path, args: Sequence[str], study: str, env: dict[str, str]) -> float:
    """Seconds from starting `convtune tune` to the start of its study's first trial."""
    start = time.time()
    timed(args, folder, env)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(folder / ".convtune" / "optuna.journal")))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return min(t.datetime_start.timestamp() for t in trials if t.datetime_start) - start


def pool_args(study: str) -> list[str]:
    return convtune("tune", "exp.yaml", "--devices", "cpu", "--workers", "2", "--study", study, "--quiet")


def time_pool(setup: Path, work: Path, repeats: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    fresh, rerun = [], []
    for index in range(repeats):
        folder = work / f"fresh-{index}-{time.time_ns()}"
        folder.mkdir()
        shutil.copy(setup / "exp.yaml", folder)
        fresh.append(first_trial_after(folder, pool_args("pool"), "pool", env))
        study = f"pool-{index}-{time.time_ns()}"  # a new study in the folder whose stores exist
        rerun.append(first_trial_after(setup, pool_args(study), study, env))
    return fresh, rerun


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def report(rows: list[Row]) -> None:
    print(f"{'':46} {'median s':>9} {'runs':>5} {'bare import s':>14} {'ratio':>6}  needs")
    for row in rows:
        bare = f"{row.bare:14.2f}" if row.bare is not None else f"{'':14}"
        ratio = f"{row.median / row.bare:6.2f}" if row.bare else f"{'':6}"
        print(f"{row.label:46} {row.median:9.2f} {len(row.seconds):5d} {bare} {ratio}  {row.needs or '-'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (the median is shown)")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temporary one)"
    )
    parser.add_argument("--compare-process", action="store_true", help="also time fresh worker processes")
    parser.add_argument("--no-pool", action="store_true", help="time the commands only")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="convtune-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    setup = work / "setup"
    setup.mkdir(exist_ok=True)
    print(f"before: {load()}; setting up in {work} ...", flush=True)
    set_up(setup)
    n = args.repeats
    commands = {
        "--help": convtune("--help"),
        "check": convtune("check", "exp.yaml"),
        "status": convtune("status", "exp.yaml"),
        "predict": convtune("predict", "models:/startup@champion", "one.png"),
    }
    rows = []
    for label, command in commands.items():
        seconds = [timed(command, setup) for _ in range(n)]
        rows.append(Row(f"convtune {label}", seconds, NEEDS[label], bare_import(NEEDS[label], setup, n)))
    if not args.no_pool:
        bare = bare_import(NEEDS["pool"], setup, n)
        arms = [("forkserver", {})] + (
            [("process", {"CONVTUNE_WORKER_START": "process"})] if args.compare_process else []
        )
        for name, extra in arms:
            fresh, rerun = time_pool(setup, work, n, environment(extra))
            rows.append(Row(f"2-worker pool, first trial ({name}, fresh)", fresh, NEEDS["pool"], bare))
            rows.append(Row(f"2-worker pool, first trial ({name}, rerun)", rerun, NEEDS["pool"], bare))
    report(rows)
    print(f"after: {load()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
