"""MLflow tracking: the only package that talks to MLflow.

- `settings`: where runs, models and artifacts go (MLflow's conventions; no MLflow import)
- `vocabulary`: every tag, user attr and metric name convtune writes (no imports)
- `store`: `TrackingStore`, one client to the store: experiments, and what runs hold
- `tracker`: `Tracker`, studies/trials/reproductions as runs, in convtune's words
- `callbacks`: Lightning callbacks that log epochs and data
- `artifacts`, `study_plots`: a trial's tables and pictures; a study's Optuna plots and summary
- `model_store`: a trained model as a self-contained inference module, saved and loaded back
- `registry`: logged and registered models, and downloading them
- `ui_links`: deep links into the MLflow UI, and the experiment tags behind them
- `resilience`, `buffer`, `datasets`: retries through outages, queued epoch metrics, dataset inputs

Names are imported lazily: `from search.tracking import load_settings` does not import MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from search.tracking.settings import TrackingSettings, load_settings

if TYPE_CHECKING:
    from search.tracking.callbacks import DataInputsCallback, EpochMetricsCallback
    from search.tracking.tracker import Tracker

__all__ = ["DataInputsCallback", "EpochMetricsCallback", "Tracker", "TrackingSettings", "load_settings"]

_LAZY = {
    "Tracker": "search.tracking.tracker",
    "EpochMetricsCallback": "search.tracking.callbacks",
    "DataInputsCallback": "search.tracking.callbacks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
