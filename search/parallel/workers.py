"""Worker processes: one per GPU (or K per GPU, or N on CPU), all optimizing the same study.

The parent (`convtune tune`) runs every check, then starts the workers (forked from a forkserver that
imported their libraries during the checks, or as `python -m search.parallel.workers JOB.json`: see
`search.parallel.worker_start`), shows the study's progress by polling the storage, restarts a worker that
crashed, and
forwards SIGTERM/Ctrl-C so that each worker closes its current trial before it exits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from search.errors import ConfigError
from search.parallel import open_work
from search.parallel.worker_start import WorkerProcess, launch

EXIT_INTERRUPTED = 143
POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 60.0

_logger = logging.getLogger(__name__)


# --- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker process runs: some GPUs (physical ids as CUDA_VISIBLE_DEVICES names them) or CPU."""

    index: int
    kind: Literal["cpu", "cuda"]
    gpus: tuple[str, ...] = ()
    threads: int | None = None
    loader_workers: int | None = None
    indices: tuple[int, ...] = ()  # the same GPUs as CUDA indices of the parent process

    @property
    def label(self) -> str:
        return f"cuda:{','.join(self.gpus)}" if self.kind == "cuda" else f"cpu:{self.index}"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)  # empty for CPU: the worker sees no GPU
        env["CONVTUNE_WORKER"] = self.label
        if self.threads is not None:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[name] = str(self.threads)
        return env


def visible_gpus() -> list[str]:
    """Physical ids of the GPUs this process may use, in CUDA's order."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None or not listed.strip():
        return [str(i) for i in range(count)]
    return [name.strip() for name in listed.split(",") if name.strip()][:count]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan_workers(
    devices: str = "auto",
    workers: int | None = None,
    trials_per_device: int = 1,
    *,
    gpus_per_trial: int = 1,
    gpus: list[str] | None = None,
    cores: int | None = None,
) -> list[WorkerSlot]:
    """The worker slots for `--devices/--workers/--trials-per-device`; a `ConfigError` when impossible."""
    gpus = visible_gpus() if gpus is None else gpus
    cores = cores or available_cores()
    text = devices.strip().lower()
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, but got --workers {workers}.")
    if trials_per_device < 1:
        raise ConfigError(f"--trials-per-device must be at least 1, but got {trials_per_device}.")
    if text == "auto":
        text = "cpu" if not gpus else ",".join(str(i) for i in range(len(gpus)))
        if gpus and workers is not None:
            raise ConfigError("--workers is for CPU workers; on GPUs use --trials-per-device K.")
    if text == "cpu":
        if trials_per_device != 1:
            raise ConfigError("--trials-per-device is for GPUs; on CPU use --workers N.")
        return _cpu_slots(workers or 1, cores)
    if workers is not None:
        raise ConfigError("--workers is for --devices cpu; with GPU ids use --trials-per-device K.")
    indices = _parse_gpu_ids(text, len(gpus))
    if gpus_per_trial > len(indices) or len(indices) % gpus_per_trial:
        raise ConfigError(
            f"trainer.devices={gpus_per_trial} needs the --devices list to hold a multiple of "
            f"{gpus_per_trial} GPUs, but got {len(indices)}."
        )
    groups = [indices[i : i + gpus_per_trial] for i in range(0, len(indices), gpus_per_trial)]
    slots = []
    for group in groups:
        for _ in range(trials_per_device):
            slots.append(WorkerSlot(len(slots), "cuda", tuple(gpus[i] for i in group), indices=tuple(group)))
    return slots


def _cpu_slots(count: int, cores: int) -> list[WorkerSlot]:
    if count == 1:
        return [WorkerSlot(0, "cpu")]
    threads = max(1, cores // count)
    loaders = max(0, (cores - threads * count) // count)
    return [WorkerSlot(i, "cpu", (), threads, loaders) for i in range(count)]


def _parse_gpu_ids(devices: str, visible: int) -> list[int]:
    try:
        ids = [int(part) for part in devices.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--devices takes 'auto', 'cpu' or GPU ids like 0,1, but got --devices {devices}."
        ) from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ConfigError(f"--devices needs distinct GPU ids >= 0, like 0,1, but got --devices {devices}.")
    if visible == 0:
        raise ConfigError(
            f"--devices {devices} names GPUs, but this machine has 0 visible GPUs; "
            "use --devices cpu --workers N."
        )
    if max(ids) >= visible:
        raise ConfigError(
            f"--devices {devices} names GPU {max(ids)}, but only {visible} GPU"
            f"{'s are' if visible > 1 else ' is'} visible (ids 0..{visible - 1})."
        )
    return ids


# --- stopping --------------------------------------------------------------------------------------


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
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# --- one worker process ------------------------------------------------------------------------------


@dataclass
class WorkerJob:
    """Everything a worker process needs; written by the parent as JSON."""

    spec: dict[str, Any]
    study_name: str
    storage: str
    n_trials: int
    deadline: float | None
    parent_run_id: str
    artifacts: bool
    in_channels: int
    image_size: tuple[int, int]
    tracking: dict[str, str]
    slot: dict[str, Any]
    max_failures: int | None = None
    result_path: str = ""
    clock_path: str = ""  # `tune --budget`: the search's share (deadlines.SearchClock)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def read(cls, path: str | Path) -> WorkerJob:
        return cls(**json.loads(Path(path).read_text()))


def trial_settings_for(slot: WorkerSlot, artifacts: bool, should_stop: Callable[[], bool]) -> Any:
    from search.study.objective import TrialSettings
    from search.study.stopping import StopCallback
    from search.tracking.artifacts import trial_writers

    return TrialSettings(
        device=slot.label,
        accelerator="gpu" if slot.kind == "cuda" else "cpu",
        artifacts=artifacts,
        extra_callbacks=[lambda _trial: StopCallback(should_stop)],
        artifact_writers=trial_writers(),
    )


def run_job(job: WorkerJob) -> int:
    """The body of a worker process: its study, its device, its trials; the exit status."""
    stop = StopFlag()
    with stop.installed():  # before the slow imports: a SIGTERM during start-up is a clean stop too
        try:
            return _run_job(job, stop)
        except (KeyboardInterrupt, SystemExit):
            open_work.close_all("the worker was interrupted")
            _write_result(job, {"ran": 0, "failed": 0, "stopped_by": "interrupted"})
            return EXIT_INTERRUPTED
        except Exception as error:  # the traceback goes to the worker's log; its trial is not left RUNNING
            open_work.close_all(f"worker {os.getpid()} crashed: {type(error).__name__}: {error}"[:500])
            raise


def _run_job(job: WorkerJob, stop: StopFlag) -> int:
    slot = WorkerSlot(
        **{**job.slot, "gpus": tuple(job.slot["gpus"]), "indices": tuple(job.slot.get("indices", ()))}
    )
    if slot.threads is not None:
        import torch

        torch.set_num_threads(slot.threads)
    from search.experiment.spec import ExperimentSpec
    from search.parallel.heartbeat import TrialGuard
    from search.study.objective import Objective
    from search.study.storage import open_storage
    from search.study.study import open_study
    from search.study.trial_loop import run_worker
    from search.tracking import TrackingSettings
    from search.tracking.tracker import Tracker

    spec = ExperimentSpec.model_validate(job.spec)
    if slot.loader_workers is not None and spec.data.num_workers == "auto":
        spec = spec.model_copy(
            update={"data": spec.data.model_copy(update={"num_workers": slot.loader_workers})}
        )
    tracker = Tracker(TrackingSettings(**job.tracking))
    handle = open_storage(job.storage, heartbeat_interval=_heartbeat_interval(job.storage))
    data_shape = (job.in_channels, tuple(job.image_size))
    study = open_study(spec, handle, job.study_name, data_shape)  # type: ignore[arg-type]
    objective = Objective(
        spec,
        tracker,
        study_name=job.study_name,
        parent_run_id=job.parent_run_id,
        data_shape=data_shape,  # type: ignore[arg-type]
        settings=trial_settings_for(slot, job.artifacts, stop),
    )
    guard = TrialGuard(tracker, spec.search.max_retries, worker=slot.label)
    timeout = None if job.deadline is None else max(0.0, job.deadline - time.time())
    if timeout == 0.0:
        return 0
    out_of_time = _budget_clock(job, objective)
    result = run_worker(
        study,
        handle,
        objective,
        n_trials=job.n_trials,
        timeout=timeout,
        max_failures=job.max_failures,
        guard=guard,
        should_stop=stop,
        out_of_time=out_of_time,
    )
    _write_result(job, asdict(result))
    return EXIT_INTERRUPTED if result.stopped_by == "interrupted" else 0


def _budget_clock(job: WorkerJob, objective: Any) -> Callable[[], bool]:
    """With a time budget, its search share: no claim after it, and a trial still training is pruned."""
    if not job.clock_path:
        return lambda: False
    from search.time_budget.deadlines import SearchClock, SearchEndCallback

    clock = SearchClock(job.clock_path)
    settings = objective.settings
    settings.extra_callbacks = [*settings.extra_callbacks, lambda trial: SearchEndCallback(clock, trial)]
    return clock.out_of_time


def _heartbeat_interval(storage: str) -> int | None:
    from search.parallel.heartbeat import HEARTBEAT_INTERVAL
    from search.study.storage_url import RDB_PREFIXES

    return HEARTBEAT_INTERVAL if storage.startswith(RDB_PREFIXES) else None


def _write_result(job: WorkerJob, result: dict[str, Any]) -> None:
    if job.result_path:
        Path(job.result_path).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        usage = "usage: python -m search.parallel.workers JOB.json (started by `convtune tune`)"
        print(usage, file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    return run_job(WorkerJob.read(argv[0]))


# --- the parent: start, watch, restart, stop --------------------------------------------------------


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
        study: Any,
        handle: Any,
        guard: Any,
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
        outcome = self._read_result(worker)
        self.result.ran += int(outcome.get("ran", 0))
        self.result.failed += int(outcome.get("failed", 0))
        stopped_by = outcome.get("stopped_by")
        if stopped_by in ("failures", "timeout", "budget") and self.result.stopped_by == "n_trials":
            self.result.stopped_by = stopped_by
        if code in (0, EXIT_INTERRUPTED):
            return
        self.result.crashed.append(f"{worker.slot.label} (exit {code}, log {worker.log_path})")
        with self.handle.claim_lock():
            self.guard.reap(self.study)
        if not stopping and worker.restarts < self.max_restarts and self._needs_trials():
            self.start(worker.slot, worker.restarts + 1)

    def _read_result(self, worker: _Running) -> dict[str, Any]:
        try:
            return json.loads(worker.result_path.read_text())
        except (OSError, ValueError):
            return {}

    def _needs_trials(self) -> bool:
        from optuna.trial import TrialState

        if self.job.deadline is not None and time.time() >= self.job.deadline:
            return False
        from search.study.study import own_trials

        trials = own_trials(self.study)
        active = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
        return active < self.job.n_trials or any(t.state == TrialState.WAITING for t in trials)


def log_tail(path: str | Path, lines: int = 5) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
