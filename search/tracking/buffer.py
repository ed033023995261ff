"""Epoch metrics written behind the training loop, so that a slow or absent server never stalls it.

`MetricsBuffer.put` queues a batch and returns at once; one writer thread sends the batches in the
order they came, each retried through the tracker's resilient client (the whole outage budget), and
`flush(run_id)` waits until a run's batches are stored: a trial's run is closed only after all of its
epochs reached the store. A batch that fails for good (not an outage: a deleted run, say) is logged
and dropped, and `flush` reports it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_logger = logging.getLogger(__name__)


@dataclass
class _Batch:
    run_id: str
    metrics: Sequence[Any]


class MetricsBuffer:
    """An ordered queue of metric batches and the one thread that writes them."""

    def __init__(self, write: Callable[[str, Sequence[Any]], None]) -> None:
        self._write = write
        self._queue: queue.Queue[_Batch] = queue.Queue()
        self._pending: dict[str, int] = {}
        self._failed: dict[str, str] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, run_id: str, metrics: Sequence[Any]) -> None:
        if not metrics:
            return
        with self._changed:
            self._pending[run_id] = self._pending.get(run_id, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="convtune-metrics", daemon=True)
                self._thread.start()
        self._queue.put(_Batch(run_id, metrics))

    def pending(self, run_id: str) -> int:
        with self._changed:
            return self._pending.get(run_id, 0)

    def flush(self, run_id: str, timeout: float | None = None) -> str | None:
        """Waits until `run_id`'s batches are written; the first permanent error, if any, else None.
        Raises TimeoutError when `timeout` passes first."""
        with self._changed:
            if not self._changed.wait_for(lambda: not self._pending.get(run_id), timeout):
                raise TimeoutError(
                    f"{self._pending.get(run_id)} metric batches of run {run_id} not yet written"
                )
            self._pending.pop(run_id, None)
            return self._failed.pop(run_id, None)

    def _drain(self) -> None:
        while True:
            batch = self._queue.get()
            error: str | None = None
            try:
                self._write(batch.run_id, batch.metrics)
            except Exception as problem:  # out of retries, or not an outage: keep training, report it
                error = f"{type(problem).__name__}: {problem}"
                _logger.warning("could not log metrics of run %s: %s", batch.run_id, error)
            with self._changed:
                if error is not None:
                    self._failed.setdefault(batch.run_id, error)
                self._pending[batch.run_id] -= 1
                self._changed.notify_all()
