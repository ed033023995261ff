"""`search.file_lock.exclusive_lock`: a second holder waits until the first lets go."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from search.file_lock import exclusive_lock


def test_a_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "sub.lock"
    held, released = threading.Event(), []

    def first() -> None:
        with exclusive_lock(path):
            held.set()
            time.sleep(0.3)
            released.append(time.monotonic())

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with exclusive_lock(path):  # its own open file: flock makes it wait, even in the same process
        acquired = time.monotonic()
    thread.join()
    assert released and acquired >= released[0]
    assert path.is_file()
