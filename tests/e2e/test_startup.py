"""Start-up: each command imports only what it uses, so that the gains of issue 21 do not erode.

Each test runs one command in a fresh interpreter and lists the heavy libraries loaded by the end.
How fast the commands answer is measured by benchmarks/startup.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search.study.storage import open_storage
from tests.conftest import REPO, tiny_experiment, write_experiment

LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric")
HEAVY = ("torch", "torchvision", *LIGHTNING, "mlflow", "albumentations")
PROBE = """
import json, sys
import search.cli.main
try:
    code = search.cli.main.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(HEAVY)))
print("LOADED " + json.dumps({"code": code, "heavy": heavy}))
"""


def loaded_by(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    """The exit status of `convtune ARGS` and the heavy libraries it imported."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    probe = PROBE.replace("HEAVY", repr(json.dumps(HEAVY)))
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    line = next((line for line in done.stdout.splitlines() if line.startswith("LOADED ")), None)
    assert line is not None, done.stderr[-2000:]
    found = json.loads(line.removeprefix("LOADED "))
    return found["code"], set(found["heavy"])


def test_help_imports_no_heavy_library(workdir: Path) -> None:
    code, heavy = loaded_by(["--help"], workdir)
    assert code == 0
    assert heavy == set()


def test_check_imports_no_lightning_mlflow_or_albumentations_without_augment(workdir: Path) -> None:
    path = write_experiment(workdir, tiny_experiment())
    code, heavy = loaded_by(["check", str(path)], workdir)
    assert code == 0
    assert "torch" in heavy  # the shapes and the data need it
    assert heavy.isdisjoint(
        {"pytorch_lightning", "lightning", "lightning_fabric", "mlflow", "albumentations"}
    )


def test_status_imports_neither_torch_nor_lightning_nor_mlflow(workdir: Path) -> None:
    path = write_experiment(workdir, tiny_experiment())
    study = optuna.create_study(study_name="tiny", storage=open_storage(None).storage, direction="maximize")
    distribution = optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)
    study.add_trial(
        optuna.trial.create_trial(
            params={"optim.lr": 3e-3}, distributions={"optim.lr": distribution}, value=0.9
        )
    )
    code, heavy = loaded_by(["status", str(path)], workdir)
    assert code == 0
    assert heavy == set(), f"convtune status imported {sorted(heavy)}"


@pytest.mark.parametrize("command", ["status", "check"])
def test_a_command_that_fails_early_imports_no_heavy_library_either(workdir: Path, command: str) -> None:
    code, heavy = loaded_by([command, str(workdir / "missing.yaml")], workdir)
    assert code == 2
    assert heavy.isdisjoint({*LIGHTNING, "mlflow", "albumentations"})
