"""Shared fixtures: every test runs in its own folder with its own MLflow store and Optuna journal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _mlflow_environment() -> Iterator[None]:
    """MLflow's `set_tracking_uri`/`set_registry_uri` export MLFLOW_*_URI for subprocesses; each test
    starts with the environment it was given."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder as cwd, with an mlflow.yml whose store lives inside it."""
    (tmp_path / "mlflow.yml").write_text(
        "tracking_uri: sqlite:///mlflow.db\n"
        "registry_uri: sqlite:///mlflow.db\n"
        "artifact_location: mlartifacts\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("CONVTUNE_MLFLOW_CONFIG", raising=False)
    yield tmp_path


class AlwaysPrune(optuna.pruners.BasePruner):
    """A pruner that stops every trial at its first report."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def tiny_experiment(**changes: Any) -> dict[str, Any]:
    """A digits experiment that trains in about a second per trial on one CPU core."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {"dataset": "digits", "val_fraction": 0.2, "batch_size": 64},
        "model": {"name": "convnet", "channels": [8, 16], "kernel_size": 3},
        "optim": {"name": "adamw", "lr": 3e-3},
        "trainer": {"max_epochs": 2},
        "search": {
            "n_trials": 2,
            "sampler": {"name": "random", "seed": 0},
            "pruner": {"name": "none"},
            "artifacts": False,
            "space": {"optim.lr": {"float": [1e-3, 1e-2], "log": True}},
        },
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    return raw


def write_experiment(folder: Path, raw: dict[str, Any], name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
