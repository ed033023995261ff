"""`search.tracking.resilience`: which errors are waited out, and for how long."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.tracking.datasets import DataSplit
from search.tracking.resilience import ResilientClient, call_with_retry, is_transient
from search.tracking.settings import load_settings
from search.tracking.tracker import Tracker


def test_only_outages_and_locks_are_retried() -> None:
    assert is_transient(ConnectionError("Failed to establish a new connection: Connection refused"))
    assert is_transient(RuntimeError("(sqlite3.OperationalError) database is locked"))
    assert not is_transient(RuntimeError("Max retries exceeded (too many 500 error responses)"))
    assert not is_transient(ValueError("INVALID_PARAMETER_VALUE: bad metric"))
    calls = []

    def refuses() -> None:
        calls.append(1)
        raise ConnectionError("Connection refused")

    with pytest.raises(ConnectionError):
        call_with_retry(refuses, budget=0.5)
    assert len(calls) >= 2, "retried within its budget, then gave up"


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


RACE = (
    "RestException: BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
    "experiment_tags.key, experiment_tags.experiment_id"
)


class RacingClient:
    """Refuses the first write of each experiment tag as a store does when another machine inserted
    the same key a moment before (the server's message, as CI saw it with two machines)."""

    def __init__(self, error: str) -> None:
        self.error = error
        self.tags: dict[str, str] = {}
        self.refused: set[str] = set()

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        if key not in self.refused:
            self.refused.add(key)
            raise RuntimeError(self.error)
        self.tags[key] = value


def test_experiment_tags_written_by_two_machines_at_once_are_retried(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = Tracker(load_settings())
    client = RacingClient(RACE)
    monkeypatch.setattr(tracker, "_client", ResilientClient(client, budget=5))
    monkeypatch.setattr(tracker, "experiment_id", lambda name: "1")
    tracker.describe_study("team", {"a": "1", "b": "2"})
    assert client.tags == {"a": "1", "b": "2"}

    other = RacingClient("INVALID_PARAMETER_VALUE: tag value too long")
    monkeypatch.setattr(tracker, "_client", ResilientClient(other, budget=5))
    with pytest.raises(RuntimeError, match="INVALID_PARAMETER_VALUE"):
        tracker.describe_study("team", {"a": "1"})  # any other refusal is not retried
    assert not is_transient(RuntimeError(RACE)), "a race is retried only for writes that set a key"


class RacingInputsClient:
    """Refuses a run's first dataset inputs as MLflow's store does when another machine's trial
    inserted the same dataset a moment before (its check-then-insert lost the race)."""

    def __init__(self) -> None:
        self.calls = 0
        self.logged: dict[str, list] = {}

    def log_inputs(self, run_id: str, datasets: list) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError(
                "RestException: BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
                "datasets.experiment_id, datasets.name, datasets.digest"
            )
        self.logged[run_id] = datasets


def test_dataset_inputs_logged_by_two_machines_at_once_are_retried(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = Tracker(load_settings())
    client = RacingInputsClient()
    monkeypatch.setattr(tracker, "_client", ResilientClient(client, budget=5))
    images, labels = torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    splits = [DataSplit("digits", split, images, labels, "sklearn") for split in ("train", "val")]
    tracker.log_data("run-1", splits)
    names = [entry.dataset.name for entry in client.logged["run-1"]]
    assert names == ["digits/train", "digits/val"] and client.calls == 2
