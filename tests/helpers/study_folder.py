"""A module-scoped study folder: its own SQLite MLflow store, this process inside it, one torch thread."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

MLFLOW_YML = (
    "tracking_uri: sqlite:///mlflow.db\nregistry_uri: sqlite:///mlflow.db\nartifact_location: mlartifacts\n"
)


@contextlib.contextmanager
def inside_study_folder(folder: Path) -> Iterator[Path]:
    """Runs the body in `folder` with its own `mlflow.yml` (the environment's MLflow settings set
    aside) and one torch thread (tiny nets: fastest, and the machine is shared); restores it all."""
    (folder / "mlflow.yml").write_text(MLFLOW_YML)
    saved = {key: os.environ.pop(key, None) for key in ("MLFLOW_TRACKING_URI", "CONVTUNE_MLFLOW_CONFIG")}
    cwd, threads = Path.cwd(), torch.get_num_threads()
    os.chdir(folder)
    torch.set_num_threads(1)
    try:
        yield folder
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value
