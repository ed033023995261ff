"""`search.parallel.stop_flag`: SIGTERM or Ctrl-C asks to stop; a second Ctrl-C interrupts at once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from search.parallel.stop_flag import StopFlag, interrupt_on


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


def test_interrupt_on_raises_even_for_a_signal_started_ignored_and_then_restores_it() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a script's background job
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(KeyboardInterrupt), interrupt_on(signal.SIGINT, signal.SIGTERM):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode; never reached
        with pytest.raises(KeyboardInterrupt), interrupt_on(signal.SIGINT):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is sigterm
    finally:
        signal.signal(signal.SIGINT, previous)
