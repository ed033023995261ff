"""`search.parallel.stop_flag`: SIGTERM or Ctrl-C asks to stop; a second Ctrl-C interrupts at once."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from search.parallel.stop_flag import StopFlag


def test_sigterm_sets_the_flag_and_the_old_handlers_come_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop = StopFlag()
    with stop.installed():
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.signal_name == "SIGTERM"
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_second_ctrl_c_interrupts_now() -> None:
    stop = StopFlag()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop() and stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_off_the_main_thread_it_installs_nothing() -> None:
    seen: list[object] = []

    def body() -> None:
        with StopFlag().installed() as stop:
            seen.append(signal.getsignal(signal.SIGTERM) == stop._handle)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [False] and signal.getsignal(signal.SIGTERM) == before
