"""How worker processes start: forked from a forkserver that imported their libraries in advance.

`convtune tune --workers N` used to start each worker as a fresh
`python -m search.parallel.worker JOB.json`, and each paid for importing torch, Lightning, MLflow and
Optuna again (17 s before the first trial of a 2-worker pool on 2 cores). Now, on platforms with a
forkserver, `prestart()` is called before the preflight: it starts the forkserver, which imports
`search.parallel.worker_preload` while the parent checks the experiment; `launch()` then forks each
worker from it with everything already imported (a restarted worker too). Each worker still gets its
own environment (`WorkerSlot.env`), working folder, log file and exit status, as with a fresh process.

GPU slots keep the fresh process: CUDA reads `CUDA_VISIBLE_DEVICES` once per process, and a library
that touched CUDA while being imported in the forkserver would pin every worker to the same GPUs.
`CONVTUNE_WORKER_START=process` restores the fresh process for CPU slots as well.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import traceback
import types
from collections.abc import Iterator, Sequence
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Protocol

from search.parallel.plan import WorkerSlot, plan_workers
from search.parallel.worker import main

START_VARIABLE = "CONVTUNE_WORKER_START"
PRELOAD = ["search.parallel.worker_preload"]


class WorkerProcess(Protocol):
    """What the pool needs of a worker process (`subprocess.Popen` has it)."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, signum: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


def uses_forkserver(slots: Sequence[WorkerSlot]) -> bool:
    """Whether these slots' workers are forked from the forkserver (CPU slots, where it exists)."""
    wanted = os.environ.get(START_VARIABLE, "forkserver").strip().lower()
    return (
        wanted != "process"
        and bool(slots)
        and all(slot.kind == "cpu" for slot in slots)
        and "forkserver" in multiprocessing.get_all_start_methods()
    )


def prestart(slots: Sequence[WorkerSlot]) -> None:
    """Starts the forkserver, which imports the workers' libraries while this process goes on.

    Returns at once: the forkserver preloads in its own process, and the first `launch()` waits for it.
    """
    if len(slots) > 1 and uses_forkserver(slots):
        _context().set_forkserver_preload(PRELOAD)
        forkserver.ensure_running()


def prestart_for_command_line(devices: str, workers: int | None) -> None:
    """`prestart` as soon as the command line asks for a CPU worker pool (`--workers N`, N > 1, with
    `--devices cpu` or `auto`), before this process spends seconds importing torch and the rest."""
    if workers is None or workers < 2 or devices.strip().lower() not in ("auto", "cpu"):
        return
    prestart(plan_workers("cpu", workers, gpus=[]))


def launch(slot: WorkerSlot, job_path: Path, log_path: Path, slots: Sequence[WorkerSlot]) -> WorkerProcess:
    """One worker process for `slot` running the job at `job_path`, its output appended to `log_path`."""
    env = slot.env(dict(os.environ))
    if not uses_forkserver(slots):
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "search.parallel.worker", str(job_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
    context = _context()
    context.set_forkserver_preload(PRELOAD)  # in case `prestart` was not called (a restart, a test)
    process = context.Process(
        target=forked_worker,
        args=(str(job_path), str(log_path), env, os.getcwd()),
        name=f"convtune-{slot.label}",
    )
    with no_main_module():
        process.start()
    return ForkedProcess(process)


@contextlib.contextmanager
def no_main_module() -> Iterator[None]:
    """Hides this process's `__main__` while a worker is forked: multiprocessing would run it again in
    the worker (a script calling `tune()` without an `if __name__ == "__main__":` guard would start
    over there), and the worker needs nothing from it."""
    main_module = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main_module


def _context() -> BaseContext:
    return multiprocessing.get_context("forkserver")


class ForkedProcess:
    """A worker forked from the forkserver, with `subprocess.Popen`'s methods that the pool uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.pid = int(process.pid or 0)

    def poll(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, signum: int) -> None:
        if self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return self.process.exitcode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def forked_worker(job_path: str, log_path: str, env: dict[str, str], cwd: str) -> None:
    """The body of a forked worker: what `python -m search.parallel.worker JOB` does in a fresh process."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    _redirect_output(log_path)
    code = 1
    try:
        code = main([job_path])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # the traceback goes to the worker's log, as in a fresh process
        traceback.print_exc()
    finally:
        atexit._run_exitfuncs()  # a forked process ends with os._exit: run what an interpreter would
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _redirect_output(log_path: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
