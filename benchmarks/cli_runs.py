"""Shared by benchmarks/resume.py and benchmarks/warm_start.py: `convtune` as a user runs it.

Each arm runs in its own folder (its own `.convtune/` journal, checkpoints and `mlflow.db`), through
`python -m search.cli`, so the figures include everything a user waits for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

REPO = Path(__file__).resolve().parents[1]
MLFLOW_YML = (
    "tracking_uri: sqlite:///mlflow.db\nregistry_uri: sqlite:///mlflow.db\nartifact_location: mlartifacts\n"
)


def arm_folder(root: Path, name: str, experiment: dict[str, Any]) -> Path:
    """A fresh folder holding `exp.yaml` and an `mlflow.yml` whose store lives inside it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "mlflow.yml").write_text(MLFLOW_YML)
    (folder / "exp.yaml").write_text(yaml.safe_dump(experiment, sort_keys=False))
    return folder


def start(folder: Path, args: list[str]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(folder: Path, args: list[str]) -> tuple[float, str]:
    """Runs `convtune ARGS` to the end; its wall seconds and stderr (exit 0 required)."""
    started = time.perf_counter()
    process = start(folder, args)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"convtune {' '.join(args)} exited {process.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
        )
    return time.perf_counter() - started, err


def load(folder: Path, name: str) -> optuna.Study | None:
    """The study `name` in the folder's default journal, or None while there is none."""
    from search.study.storage import open_storage
    from search.study.storage_url import DEFAULT_STORAGE

    journal = folder / DEFAULT_STORAGE
    if not journal.is_file():
        return None
    handle = open_storage(str(journal))
    if name not in optuna.get_all_study_names(handle.storage):
        return None
    return optuna.load_study(study_name=name, storage=handle.storage)


def read_experiment(path: Path) -> dict[str, Any]:
    from search.experiment.spec import read_yaml

    return read_yaml(path)


def digits_experiment(name: str, epochs: int, space: dict[str, Any], **search: Any) -> dict[str, Any]:
    """A small scikit-learn digits experiment for smoke runs (seconds per trial on one core)."""
    return {
        "name": name,
        "seed": 0,
        "data": {"dataset": "digits", "val_fraction": 0.2, "batch_size": 64},
        "model": {"name": "convnet", "channels": [8, 16], "kernel_size": 3, "dropout": 0.2},
        "optim": {"name": "adamw", "lr": 3e-3, "scheduler": "onecycle"},
        "trainer": {"max_epochs": epochs},
        "search": {
            "n_trials": 1,
            "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 3},
            "pruner": {"name": "none"},
            "artifacts": False,
            "space": space,
            **search,
        },
    }
