"""`search.tracking.buffer`: epoch metrics queued, written in order, through an outage."""

from __future__ import annotations

import time

from search.tracking.buffer import MetricsBuffer
from search.tracking.resilience import ResilientClient


class _Flaky:
    """Refuses connections `failures` times, then works; records what it stored."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: list[tuple[str, list[int]]] = []

    def log_batch(self, run_id: str, metrics: list[int]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("HTTPConnectionPool: Max retries exceeded (Connection refused)")
        self.stored.append((run_id, metrics))


def test_queued_epochs_are_written_in_order_after_the_store_comes_back() -> None:
    flaky = _Flaky(failures=3)
    client = ResilientClient(flaky, budget=30)
    buffer = MetricsBuffer(lambda run_id, batch: client.log_batch(run_id, list(batch)))
    started = time.monotonic()
    for epoch in range(5):
        buffer.put("run", [epoch])
    assert time.monotonic() - started < 0.5, "putting never waits for the store"
    assert buffer.flush("run", timeout=30) is None
    assert flaky.stored == [("run", [epoch]) for epoch in range(5)]


def test_a_permanent_error_is_reported_by_flush_and_does_not_block_other_runs() -> None:
    def write(run_id: str, batch: object) -> None:
        if run_id == "deleted":
            raise ValueError("RESOURCE_DOES_NOT_EXIST: run deleted")

    buffer = MetricsBuffer(write)
    buffer.put("deleted", [1])
    buffer.put("alive", [2])
    assert buffer.flush("alive", timeout=10) is None
    assert "RESOURCE_DOES_NOT_EXIST" in (buffer.flush("deleted", timeout=10) or "")
