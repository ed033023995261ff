"""`search/tracking/__init__.py`: its settings without MLflow; `Tracker` and the callbacks on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import search.tracking as tracking
from tests.conftest import REPO


def test_the_settings_come_without_importing_mlflow() -> None:
    probe = (
        "import sys; from search.tracking import load_settings; load_settings();"
        "print('mlflow' in {m.split('.')[0] for m in sys.modules})"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_lazy_names_are_those_of_their_modules_and_an_unknown_one_is_an_attribute_error() -> None:
    from search.tracking.callbacks import DataInputsCallback, EpochMetricsCallback
    from search.tracking.tracker import Tracker

    assert tracking.Tracker is Tracker
    assert tracking.EpochMetricsCallback is EpochMetricsCallback
    assert tracking.DataInputsCallback is DataInputsCallback
    with pytest.raises(AttributeError, match="has no attribute 'Trackr'"):
        _ = tracking.Trackr
