"""The parent of a worker pool: starts one process per slot, watches them, restarts, stops.

`convtune tune` runs every check, then starts the workers (forked from a forkserver that imported
their libraries during the checks, or as `python -m search.parallel.worker JOB.json`: see
`search.parallel.worker_start`), shows the study's progress by polling the storage, restarts a worker
that crashed, and forwards SIGTERM/Ctrl-C so that each worker closes its current trial before it exits.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.parallel.heartbeat import TrialGuard
from search.parallel.job import EXIT_INTERRUPTED, WorkerJob, read_result
from search.parallel.plan import WorkerSlot
from search.parallel.stop_flag import StopFlag
from search.parallel.worker_start import WorkerProcess, launch
from search.study.study import StorageHandle, own_trials

POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 60.0


@dataclass
class _Running:
    slot: WorkerSlot
    process: WorkerProcess
    log_path: Path
    result_path: Path
    restarts: int = 0


@dataclass
class PoolResult:
    ran: int = 0
    failed: int = 0
    stopped_by: str = "n_trials"
    crashed: list[str] = field(default_factory=list)


class WorkerPool:
    """Starts one process per slot, polls them and the study every second, restarts crashed ones."""

    def __init__(
        self,
        slots: list[WorkerSlot],
        job: WorkerJob,
        folder: Path,
        *,
        study: optuna.Study,
        handle: StorageHandle,
        guard: TrialGuard,
        max_restarts: int = 3,
    ) -> None:
        self.slots = slots
        self.job = job
        self.folder = folder
        self.study = study
        self.handle = handle
        self.guard = guard
        self.max_restarts = max_restarts
        self.running: dict[int, _Running] = {}
        self.result = PoolResult()

    def start(self, slot: WorkerSlot, restarts: int = 0) -> None:
        tag = f"{self.job.study_name}-worker{slot.index}"
        job_path = self.folder / f"{tag}.json"
        result_path = self.folder / f"{tag}.result.json"
        result_path.unlink(missing_ok=True)
        job = WorkerJob(**{**asdict(self.job), "slot": asdict(slot), "result_path": str(result_path)})
        job.write(job_path)
        log_path = self.folder / f"{tag}.log"
        process = launch(slot, job_path, log_path, self.slots)
        self.running[slot.index] = _Running(slot, process, log_path, result_path, restarts)

    def run(self, stop: StopFlag, on_poll: Callable[[], None] = lambda: None) -> PoolResult:
        try:
            return self._watch(stop, on_poll)
        except BaseException:  # a second Ctrl-C, or an error here: no worker may outlive the parent
            self._signal_all(signal.SIGTERM)
            for worker in self.running.values():
                try:
                    worker.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait()
            with self.handle.claim_lock():
                self.guard.reap(self.study)
            raise

    def _watch(self, stop: StopFlag, on_poll: Callable[[], None]) -> PoolResult:
        for slot in self.slots:
            self.start(slot)
        stopping_since: float | None = None
        while self.running:
            time.sleep(POLL_SECONDS)
            if stop() and stopping_since is None:
                stopping_since = time.monotonic()
                self._signal_all(signal.SIGTERM)
            if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_SECONDS:
                self._signal_all(signal.SIGKILL)
            for index, worker in list(self.running.items()):
                code = worker.process.poll()
                if code is not None:
                    del self.running[index]
                    self._finished(worker, code, stopping=stopping_since is not None)
            on_poll()
        if stop():
            self.result.stopped_by = "interrupted"
        return self.result

    def _signal_all(self, signum: signal.Signals) -> None:
        for worker in self.running.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signum)

    def _finished(self, worker: _Running, code: int, *, stopping: bool) -> None:
        outcome = read_result(worker.result_path)
        self.result.ran += int(outcome.get("ran", 0))
        self.result.failed += int(outcome.get("failed", 0))
        stopped_by = outcome.get("stopped_by")
        if stopped_by in ("failures", "timeout", "budget") and self.result.stopped_by == "n_trials":
            self.result.stopped_by = str(stopped_by)
        if code in (0, EXIT_INTERRUPTED):
            return
        self.result.crashed.append(f"{worker.slot.label} (exit {code}, log {worker.log_path})")
        with self.handle.claim_lock():
            self.guard.reap(self.study)
        if not stopping and worker.restarts < self.max_restarts and self._needs_trials():
            self.start(worker.slot, worker.restarts + 1)

    def _needs_trials(self) -> bool:
        if self.job.deadline is not None and time.time() >= self.job.deadline:
            return False
        trials = own_trials(self.study)
        active = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
        return active < self.job.n_trials or any(t.state == TrialState.WAITING for t in trials)


def log_tail(path: str | Path, lines: int = 5) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
