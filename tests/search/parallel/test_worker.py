"""`search.parallel.worker`: the worker process's entry point, its exit status, and what it closes when
it is interrupted or crashes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search.parallel import open_work, worker_trials
from search.parallel.job import EXIT_INTERRUPTED, WorkerJob
from search.parallel.stop_flag import StopFlag
from search.parallel.worker import main, run_job
from tests.conftest import REPO


def _job(tmp_path: Path) -> WorkerJob:
    return WorkerJob(
        spec={}, study_name="tiny", storage="journal.log", n_trials=1, deadline=None, parent_run_id="p",
        artifacts=False, in_channels=1, image_size=(8, 8), tracking={}, slot={},
        result_path=str(tmp_path / "result.json"),
    )  # fmt: skip


def test_python_dash_m_without_a_job_prints_the_usage_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "search.parallel.worker"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "usage: python -m search.parallel.worker JOB.json" in done.stderr


def test_main_runs_the_job_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []

    def run_trials(job: WorkerJob, stop: StopFlag) -> int:
        seen.append((job.study_name, stop()))
        return 0

    monkeypatch.setattr(worker_trials, "run_trials", run_trials)
    assert main([str(_job(tmp_path).write(tmp_path / "job.json"))]) == 0
    assert seen == [("tiny", False)]


def test_an_interrupted_worker_closes_its_work_says_so_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def interrupted(job: WorkerJob, stop: StopFlag) -> int:
        open_work.opened("optuna-trial:tiny:0", closed.append)
        raise KeyboardInterrupt

    monkeypatch.setattr(worker_trials, "run_trials", interrupted)
    assert run_job(_job(tmp_path)) == EXIT_INTERRUPTED
    assert closed == ["the worker was interrupted"]
    assert json.loads((tmp_path / "result.json").read_text()) == {
        "ran": 0, "failed": 0, "stopped_by": "interrupted"
    }  # fmt: skip


def test_a_crash_closes_its_work_with_the_reason_and_goes_on_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def crashing(job: WorkerJob, stop: StopFlag) -> int:
        open_work.opened("mlflow-run:abc", closed.append)
        raise RuntimeError("boom")

    monkeypatch.setattr(worker_trials, "run_trials", crashing)
    with pytest.raises(RuntimeError, match="boom"):
        run_job(_job(tmp_path))
    (reason,) = closed
    assert reason.startswith("worker ") and reason.endswith("crashed: RuntimeError: boom")
    assert not (tmp_path / "result.json").exists()
