"""`search.parallel.pool`: the parent of a worker pool sums what its workers did, restarts a crashed one
while the study needs trials, and forwards a stop request (the processes are stand-ins here; real ones:
tests/e2e/test_worker_pool.py)."""

from __future__ import annotations

import json
import signal
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest

from search.parallel import pool as pool_module
from search.parallel.heartbeat import TrialGuard
from search.parallel.job import EXIT_INTERRUPTED, WorkerJob
from search.parallel.plan import WorkerSlot
from search.parallel.pool import WorkerPool, log_tail
from search.parallel.stop_flag import StopFlag
from search.study.storage import open_storage


class FakeWorker:
    """Ends after `polls` polls with `code`, having written `result` where its job says."""

    def __init__(self, job_path: Path, code: int, result: dict | None, polls: int = 1) -> None:
        self.pid = 4242
        self.job = json.loads(job_path.read_text())
        self.code, self.result, self.polls = code, result, polls
        self.signals: list[int] = []

    def poll(self) -> int | None:
        self.polls -= 1
        if self.polls > 0 and not self.signals:
            return None
        if self.result is not None:
            Path(self.job["result_path"]).write_text(json.dumps(self.result))
        return EXIT_INTERRUPTED if self.signals else self.code

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def wait(self, timeout: float | None = None) -> int:
        return self.code

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[FakeWorker]:
    """The stand-ins the pool started, in order; each pops its behaviour from `plans`."""
    workers: list[FakeWorker] = []
    monkeypatch.setattr(pool_module, "POLL_SECONDS", 0.0)

    def launch(slot: WorkerSlot, job_path: Path, log_path: Path, slots: Sequence[WorkerSlot]) -> FakeWorker:
        log_path.write_text(f"log of {slot.label}\nlast line\n")
        code, result, polls = PLANS.pop(0)
        workers.append(FakeWorker(job_path, code, result, polls))
        return workers[-1]

    monkeypatch.setattr(pool_module, "launch", launch)
    return workers


PLANS: list[tuple[int, dict | None, int]] = []


def _pool(tmp_path: Path, slots: int, n_trials: int = 4) -> WorkerPool:
    handle = open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(study_name="tiny", storage=handle.storage)
    job = WorkerJob(
        spec={}, study_name="tiny", storage=handle.url, n_trials=n_trials, deadline=None, parent_run_id="p",
        artifacts=False, in_channels=1, image_size=(8, 8), tracking={}, slot={},
    )  # fmt: skip
    plan = [WorkerSlot(i, "cpu", (), 1, 0) for i in range(slots)]
    return WorkerPool(plan, job, tmp_path, study=study, handle=handle, guard=TrialGuard(None, 1))


def test_the_workers_results_add_up(tmp_path: Path, started: list[FakeWorker]) -> None:
    PLANS[:] = [(0, {"ran": 2, "failed": 0, "stopped_by": "n_trials"}, 1),
                (0, {"ran": 1, "failed": 1, "stopped_by": "timeout"}, 3)]  # fmt: skip
    polls: list[int] = []
    result = _pool(tmp_path, 2).run(StopFlag(), on_poll=lambda: polls.append(1))
    assert (result.ran, result.failed, result.stopped_by, result.crashed) == (3, 1, "timeout", [])
    assert [w.job["slot"]["index"] for w in started] == [0, 1] and len(polls) == 3
    assert json.loads((tmp_path / "tiny-worker1.json").read_text())["result_path"].endswith(
        "tiny-worker1.result.json"
    )


def test_a_crashed_worker_is_reported_and_restarted_while_the_study_needs_trials(
    tmp_path: Path, started: list[FakeWorker]
) -> None:
    PLANS[:] = [(-9, None, 1), (0, {"ran": 1, "failed": 0, "stopped_by": "n_trials"}, 1)]
    result = _pool(tmp_path, 1).run(StopFlag())
    assert len(started) == 2 and result.ran == 1
    (crash,) = result.crashed
    assert crash.startswith("cpu:0 (exit -9, log ") and crash.endswith("tiny-worker0.log)")
    assert log_tail(crash.rsplit("log ", 1)[-1].rstrip(")"), 1) == "last line"


def test_a_stop_request_is_forwarded_and_nothing_restarts(tmp_path: Path, started: list[FakeWorker]) -> None:
    PLANS[:] = [(0, None, 10**6), (0, None, 10**6)]
    stop = StopFlag()
    stop.requested = True  # as SIGTERM would set it
    result = _pool(tmp_path, 2).run(stop)
    assert [w.signals for w in started] == [[signal.SIGTERM], [signal.SIGTERM]]
    assert result.stopped_by == "interrupted" and result.crashed == [] and len(started) == 2


def test_the_tail_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert log_tail(tmp_path / "none.log") == ""
