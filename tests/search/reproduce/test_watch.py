"""`search.reproduce.watch`: the live line of a reproduction's training runs."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from search.reproduce.watch import TrainingWatch
from search.tracking.tracker import RunProgress


def _plan(trial: int, run_id: str, epochs: int) -> Any:
    """What the watch reads of a `Plan`."""
    config = SimpleNamespace(trainer=SimpleNamespace(max_epochs=epochs))
    return SimpleNamespace(trial=SimpleNamespace(number=trial), run_id=run_id, config=config)


def test_the_line_names_each_running_runs_epoch_and_drops_ended_runs() -> None:
    logged = {"a": RunProgress(True, 3, 0.9123), "b": RunProgress(True, 0, None)}
    watch = TrainingWatch(None, lambda run_id, metric: logged[run_id], "val/acc")
    watch.follow(_plan(33, "a", 25))
    watch.follow(_plan(62, "b", 20))
    assert watch.line() == "trial 33 epoch 3/25 val/acc 0.9123 · trial 62 epoch 0/20"
    logged["a"] = RunProgress(False, 25, 0.95)
    logged["b"] = RunProgress(True, 1, 0.8)
    assert watch.line() == "trial 62 epoch 1/20 val/acc 0.8000"
    logged["a"] = RunProgress(True, 25, 0.95)  # an ended run is not read again
    assert watch.line() == "trial 62 epoch 1/20 val/acc 0.8000"
    logged["b"] = RunProgress(True, 21, 0.9, replanned=24)  # lengthened by a deadline
    assert watch.line() == "trial 62 epoch 21/24 val/acc 0.9000"


def test_the_thread_shows_the_line_until_the_training_ends_and_survives_a_failed_read() -> None:
    shown: list[str] = []
    reads = 0
    two_shown = threading.Event()

    def read(run_id: str, metric: str) -> RunProgress:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise ConnectionError("the tracking server did not answer")
        return RunProgress(True, reads, 0.5)

    def show(line: str) -> None:
        shown.append(line)
        if len(shown) >= 2:
            two_shown.set()

    with TrainingWatch(show, read, "val/acc", interval=0.01) as watch:
        watch.follow(_plan(1, "a", 9))
        assert two_shown.wait(timeout=10)
    after = len(shown)
    assert shown[0] == "trial 1 epoch 2/9 val/acc 0.5000"  # the first read failed; the next one shown
    assert not watch._thread.is_alive() and len(shown) == after  # nothing shown after the end


def test_without_a_show_no_thread_starts() -> None:
    with TrainingWatch(None, lambda run_id, metric: RunProgress(True, 1, None), "val/acc") as watch:
        watch.follow(_plan(1, "a", 9))
    assert not watch._thread.is_alive() and watch._thread.ident is None
