"""What passes between the parent of a worker pool and one worker process, as files and an exit status.

The parent writes a `WorkerJob` as JSON (the study, its storage, the worker's slot, ...); the worker
writes what it did (`ran`, `failed`, `stopped_by`) to the job's `result_path` and exits with 0, or
`EXIT_INTERRUPTED` when it was stopped by a signal; any other status is a crash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 143


@dataclass
class WorkerJob:
    """Everything a worker process needs; written by the parent as JSON."""

    spec: dict[str, Any]  # ExperimentSpec.model_dump(mode="json")
    study_name: str
    storage: str
    n_trials: int
    deadline: float | None
    parent_run_id: str
    artifacts: bool
    in_channels: int
    image_size: tuple[int, int]
    tracking: dict[str, str]  # TrackingSettings as a dict
    slot: dict[str, Any]  # WorkerSlot as a dict
    max_failures: int | None = None
    result_path: str = ""
    clock_path: str = ""  # `tune --budget`: the search's share (deadlines.SearchClock)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def read(cls, path: str | Path) -> WorkerJob:
        return cls(**json.loads(Path(path).read_text()))


def write_result(job: WorkerJob, result: dict[str, int | str]) -> None:
    """The worker's outcome (`ran`, `failed`, `stopped_by`) where the parent reads it."""
    if job.result_path:
        Path(job.result_path).write_text(json.dumps(result))


def read_result(path: Path) -> dict[str, int | str]:
    """What a worker wrote with `write_result`; empty when it wrote nothing (it crashed)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
