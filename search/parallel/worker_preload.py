"""What a worker process imports before its first trial, imported once by the worker forkserver.

`search.parallel.worker_start` starts a forkserver that imports this module while `convtune tune` runs its
checks; each worker is then forked from it with these modules already loaded (torch, Lightning,
MLflow, Optuna, albumentations: about 6 s per worker on 2 cores) instead of importing them again.
A module that fails to import here is simply imported (and fails, with its message) in the worker.
"""

from __future__ import annotations

import importlib
import logging

MODULES = (
    "search.parallel.worker",
    "search.parallel.worker_trials",
    "search.study.objective",
    "search.study.trial_loop",
    "search.parallel.heartbeat",
    "search.tracking.artifacts",
    "search.tracking.tracker",
    "search.tracking.callbacks",
    "lightning_modules.training",
    "lightning_modules.data.datamodule",
    "albumentations",
)


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Imports `modules`; returns those that failed (never raises: the forkserver must come up)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:
            logging.getLogger(__name__).debug("preloading %s failed: %s", name, error)
            failed.append(name)
    return failed


FAILED = preload()
