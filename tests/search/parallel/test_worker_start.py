"""`search.parallel.worker_start`: how a worker process starts: forked from the forkserver (CPU slots),
or fresh as `python -m search.parallel.worker` (GPU slots, or `CONVTUNE_WORKER_START=process`)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from search.parallel.plan import WorkerSlot
from search.parallel.worker_start import START_VARIABLE, launch, uses_forkserver

CPU = [WorkerSlot(0, "cpu", (), 1, 0), WorkerSlot(1, "cpu", (), 1, 0)]
HAS_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()


def test_cpu_slots_fork_gpu_slots_and_the_variable_start_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(START_VARIABLE, raising=False)
    assert uses_forkserver(CPU) == HAS_FORKSERVER
    assert not uses_forkserver([WorkerSlot(0, "cuda", ("0",), indices=(0,))])
    assert not uses_forkserver([])
    monkeypatch.setenv(START_VARIABLE, " Process ")
    assert not uses_forkserver(CPU)


def test_a_fresh_worker_runs_the_worker_module_with_its_log_and_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(START_VARIABLE, "process")
    log = tmp_path / "worker.log"
    process = launch(CPU[1], tmp_path / "missing.json", log, CPU)
    assert process.wait(timeout=60) == 1  # the job file is missing: the worker fails, and says why
    text = log.read_text()
    assert "Traceback" in text and "missing.json" in text
