"""What a worker process does: opens its study on its slot and runs trials until the study is done.

Imported by the worker (`search.parallel.worker`) once its stop flag is installed, or beforehand by
the forkserver (`search.parallel.worker_preload`); never by the parent of the pool, which trains
nothing and so does without Lightning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from search.experiment.spec import ExperimentSpec
from search.parallel.heartbeat import HEARTBEAT_INTERVAL, TrialGuard
from search.parallel.job import EXIT_INTERRUPTED, WorkerJob, write_result
from search.parallel.plan import WorkerSlot, with_slot_loaders
from search.parallel.stop_flag import StopFlag
from search.study.objective import Objective, TrialSettings
from search.study.stopping import StopCallback
from search.study.storage import open_storage
from search.study.storage_url import RDB_PREFIXES
from search.study.study import open_study
from search.study.trial_loop import run_worker
from search.time_budget.deadlines import SearchClock, SearchEndCallback
from search.tracking import TrackingSettings
from search.tracking.artifacts import trial_writers
from search.tracking.tracker import Tracker


def trial_settings_for(slot: WorkerSlot, artifacts: bool, should_stop: Callable[[], bool]) -> TrialSettings:
    return TrialSettings(
        device=slot.label,
        accelerator="gpu" if slot.kind == "cuda" else "cpu",
        artifacts=artifacts,
        extra_callbacks=[lambda _trial: StopCallback(should_stop)],
        artifact_writers=trial_writers(),
    )


def job_slot(job: WorkerJob) -> WorkerSlot:
    """The job's slot, back from JSON (where tuples were lists)."""
    return WorkerSlot(
        **{**job.slot, "gpus": tuple(job.slot["gpus"]), "indices": tuple(job.slot.get("indices", ()))}
    )


def run_trials(job: WorkerJob, stop: StopFlag) -> int:
    """Trials of the job's study on its slot until it holds enough, time is up or `stop` is set."""
    slot = job_slot(job)
    if slot.threads is not None:
        torch.set_num_threads(slot.threads)
    spec = ExperimentSpec.model_validate(job.spec)
    spec = with_slot_loaders(spec, slot.loader_workers)
    tracker = Tracker(TrackingSettings(**job.tracking))
    handle = open_storage(job.storage, heartbeat_interval=heartbeat_interval(job.storage))
    data_shape = (job.in_channels, (job.image_size[0], job.image_size[1]))
    study = open_study(spec, handle, job.study_name, data_shape)
    objective = Objective(
        spec,
        tracker,
        study_name=job.study_name,
        parent_run_id=job.parent_run_id,
        data_shape=data_shape,
        settings=trial_settings_for(slot, job.artifacts, stop),
    )
    guard = TrialGuard(tracker, spec.search.max_retries, worker=slot.label)
    timeout = None if job.deadline is None else max(0.0, job.deadline - time.time())
    if timeout == 0.0:
        return 0
    out_of_time = budget_clock(job, objective)
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
    write_result(job, asdict(result))
    return EXIT_INTERRUPTED if result.stopped_by == "interrupted" else 0


def budget_clock(job: WorkerJob, objective: Objective) -> Callable[[], bool]:
    """With a time budget, its search share: no claim after it, and a trial still training is pruned."""
    if not job.clock_path:
        return lambda: False
    clock = SearchClock(job.clock_path)
    settings = objective.settings
    settings.extra_callbacks = [*settings.extra_callbacks, lambda trial: SearchEndCallback(clock, trial)]
    return clock.out_of_time


def heartbeat_interval(storage: str) -> int | None:
    """Optuna's heartbeat on RDB storage (the journal has none)."""
    return HEARTBEAT_INTERVAL if storage.startswith(RDB_PREFIXES) else None
