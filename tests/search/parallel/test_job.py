"""`search.parallel.job`: the job a worker reads, the result it writes back, as JSON files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from search.parallel.job import EXIT_INTERRUPTED, WorkerJob, read_result, write_result


def _job(**changes: object) -> WorkerJob:
    fields: dict = {
        "spec": {"name": "tiny"},
        "study_name": "tiny",
        "storage": "/tmp/optuna.journal",
        "n_trials": 3,
        "deadline": None,
        "parent_run_id": "abc",
        "artifacts": False,
        "in_channels": 1,
        "image_size": (8, 8),
        "tracking": {"tracking_uri": "sqlite:///mlflow.db"},
        "slot": {"index": 0, "kind": "cpu", "gpus": []},
    }
    return WorkerJob(**{**fields, **changes})


def test_a_job_comes_back_from_its_file_as_written(tmp_path: Path) -> None:
    job = _job(max_failures=2, clock_path="/tmp/clock.json")
    again = WorkerJob.read(job.write(tmp_path / "job.json"))
    assert asdict(again) == {**asdict(job), "image_size": [8, 8]}  # JSON has no tuples


def test_the_result_is_written_where_the_job_says_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_result(_job(result_path=str(path)), {"ran": 2, "failed": 1, "stopped_by": "timeout"})
    assert read_result(path) == {"ran": 2, "failed": 1, "stopped_by": "timeout"}


def test_no_result_file_reads_as_nothing_and_a_job_without_a_path_writes_none(tmp_path: Path) -> None:
    assert read_result(tmp_path / "missing.json") == {}
    (tmp_path / "torn.json").write_text('{"ran": ')
    assert read_result(tmp_path / "torn.json") == {}
    write_result(_job(), {"ran": 1})
    assert list(tmp_path.iterdir()) == [tmp_path / "torn.json"]


def test_an_interrupted_worker_exits_like_a_process_ended_by_sigterm() -> None:
    assert EXIT_INTERRUPTED == 128 + 15
