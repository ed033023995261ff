"""Stopping on request: SIGTERM or Ctrl-C closes the current trial instead of killing it.

The parent of a worker pool forwards the request to its workers; each worker (and a study run in
the parent itself) checks the flag between trials and, through `search.study.stopping.StopCallback`,
between batches. Where a body should simply stop, `interrupt_on` turns signals into
`KeyboardInterrupt`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def interrupt_on(*signals: signal.Signals) -> Iterator[None]:
    """Each of `signals` raises `KeyboardInterrupt` while the body runs, even one the process started
    with ignored (a script's background job ignores SIGINT); then the old handlers are back. Off the
    main thread nothing changes (Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class StopFlag:
    """Set by SIGTERM/SIGINT: the first asks the current trial to close; a second Ctrl-C interrupts now."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Handles SIGTERM and SIGINT while the body runs (main thread only), then restores the old ones."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
