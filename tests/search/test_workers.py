"""The SQLite tracking store under several worker processes: "database is locked" is retried, nothing lost."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from search.tracking import Tracker, load_settings
from search.tracking.resilience import ResilientClient
from tests.helpers.parallel_helpers import mlflow_client


class _LockedTwice:
    def __init__(self) -> None:
        self.calls = 0

    def log_batch(self, run_id: str) -> str:
        self.calls += 1
        if self.calls < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return run_id

    def get_run(self, run_id: str) -> str:
        raise RuntimeError(f"run {run_id} not found")


def test_resilient_client_retries_database_is_locked_but_not_other_errors() -> None:
    inner = _LockedTwice()
    client = ResilientClient(inner, budget=5)
    assert client.log_batch("abc") == "abc" and inner.calls == 3
    with pytest.raises(RuntimeError, match="not found"):
        client.get_run("abc")


def _hammer(settings: dict[str, str], run_id: str, worker: int, count: int) -> None:
    from search.tracking import TrackingSettings

    tracker = Tracker(TrackingSettings(**settings))
    for step in range(count):
        tracker.log_metrics(run_id, {f"w{worker}": float(step)}, step=step)
        tracker.set_tags(run_id, {f"w{worker}.last": str(step)})


def test_four_processes_writing_to_the_sqlite_tracking_store_lose_nothing(workdir: Path) -> None:
    tracker = Tracker(load_settings())
    run_id = tracker.study_run("hammer")
    settings = {
        k: getattr(tracker.settings, k) for k in ("tracking_uri", "registry_uri", "artifact_location")
    }
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_hammer, args=(settings, run_id, w, 40)) for w in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    client = mlflow_client()
    for worker in range(4):
        assert len(client.get_metric_history(run_id, f"w{worker}")) == 40
        assert client.get_run(run_id).data.tags[f"w{worker}.last"] == "39"
