"""`search/tracking/__init__.py`: its settings without MLflow; `Tracker` and the callbacks on first use."""

from __future__ import annotations

import pytest

import search.tracking as tracking
from tests.helpers.fresh_imports import imported_packages


def test_the_settings_come_without_importing_mlflow() -> None:
    assert "mlflow" not in imported_packages("from search.tracking import load_settings; load_settings()")


def test_lazy_names_are_those_of_their_modules_and_an_unknown_one_is_an_attribute_error() -> None:
    from search.tracking.callbacks import DataInputsCallback, EpochMetricsCallback
    from search.tracking.tracker import Tracker

    assert tracking.Tracker is Tracker
    assert tracking.EpochMetricsCallback is EpochMetricsCallback
    assert tracking.DataInputsCallback is DataInputsCallback
    with pytest.raises(AttributeError, match="has no attribute 'Trackr'"):
        _ = tracking.Trackr
