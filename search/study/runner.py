"""`tune`: every check first (`search.study.prepare`), then the trials: in this process for one worker,
else in one process per worker slot (`search.parallel.pool`); then the study's end.

`tune` prints nothing: it tells a `TuneObserver` (`search.study.observer`) what happens, and
`convtune tune` passes the terminal's live display.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from lightning_modules.data import clear_cache
from lightning_modules.data.splits import clear_setup_cache
from search.experiment.serialized import experiment_tree
from search.experiment.spec import ExperimentSpec
from search.parallel.heartbeat import TrialGuard
from search.parallel.job import WorkerJob
from search.parallel.memory import release_memory
from search.parallel.plan import WorkerSlot, plan_workers
from search.parallel.pool import WorkerPool, log_tail
from search.parallel.stop_flag import StopFlag
from search.parallel.worker_start import prestart
from search.study.observer import StudyEnd, TuneObserver, Unwatched
from search.study.pareto import tag_front
from search.study.prepare import PreparedStudy, prepare_study
from search.study.storage import StorageHandle
from search.study.storage_url import RDB_PREFIXES
from search.study.study import FINISHED, best_trial, own_trials
from search.study.trial_loop import WorkerResult, holds, run_worker
from search.tracking import vocabulary as v
from search.tracking.settings import redact
from search.tracking.study_plots import StudyPlotsRefresher, log_study_plots, refresher_for
from search.tracking.tracker import Tracker
from search.tracking.ui_links import VIEW_ID, study_runs_url

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from search.study.objective import Objective

StudyHook = Callable[[optuna.Study, Tracker, str], None]


class SearchLimit(Protocol):
    """A time budget's hold on the search (`search.time_budget.budgeted.BudgetedSearch`): told when
    the study is ready and after every trial, it says when to stop claiming, prunes a trial that
    outlives the search's share, and shares that share with worker processes through `clock_path`."""

    clock_path: str

    def begin(self, prepared: PreparedStudy, slots: list[WorkerSlot]) -> None: ...

    def observe(self, study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None) -> None: ...

    def out_of_time(self) -> bool: ...

    def trial_callback(self, trial: optuna.Trial) -> pl.Callback: ...


@dataclass
class TuneOptions:
    study_name: str | None = None
    storage: str | None = None
    n_trials: int | None = None
    timeout: float | None = None
    artifacts: bool | None = None
    progress: bool = True  # the live view while trials run, and the summary at the end
    device: str = "cpu"
    accelerator: str | None = None
    study_hooks: list[StudyHook] = field(default_factory=lambda: [log_study_plots, tag_front])
    devices: str = "auto"
    workers: int | None = None
    trials_per_device: int = 1
    limit: SearchLimit | None = None  # `tune --budget`: the search's share of the time budget

    def artifacts_for(self, spec: ExperimentSpec) -> bool:
        """`--no-artifacts` wins over the experiment's `search.artifacts`."""
        return spec.search.artifacts if self.artifacts is None else self.artifacts


def plan(spec: ExperimentSpec, options: TuneOptions) -> list[WorkerSlot]:
    """The worker slots for the options' devices (a `ConfigError` when they cannot be had)."""
    per_trial = spec.trainer.devices if isinstance(spec.trainer.devices, int) else 1
    return plan_workers(options.devices, options.workers, options.trials_per_device, gpus_per_trial=per_trial)


def held_already(study: optuna.Study, n_trials: int) -> list[str]:
    """A note when the study already holds its `n_trials` (a total, not a count of more), so that
    resuming it trains nothing; empty otherwise (a retry waiting still runs)."""
    trials = own_trials(study)
    if not holds(trials, n_trials, FINISHED):
        return []
    held = sum(t.state in FINISHED for t in trials)
    return [
        f"study {study.study_name} already holds {held} finished trial{'s' if held != 1 else ''} and "
        f"n_trials is {n_trials} (the trials it should hold, not more to run): nothing to train; "
        f"--n-trials {held + n_trials} runs {n_trials} more."
    ]


def tune(spec: ExperimentSpec, options: TuneOptions, observer: TuneObserver | None = None) -> optuna.Study:
    """Runs (or resumes) the study: in this process for one worker, else in one process per slot."""
    observer = observer or Unwatched()
    if options.timeout is None:
        options.timeout = spec.search.timeout
    slots = plan(spec, options)
    prestart(slots)  # a worker pool's libraries load in the forkserver while the checks run
    prepared = prepare_study(spec, options)
    notes = [*prepared.checked.notes, *held_already(prepared.study, options.n_trials or spec.search.n_trials)]
    observer.study_ready(notes, prepared.warm.line() if prepared.warm is not None else None)
    study, tracker, parent_run_id = prepared.study, prepared.tracker, prepared.parent_run_id
    if options.limit is not None:
        options.limit.begin(prepared, slots)
    stop = StopFlag()
    with stop.installed():
        if len(slots) == 1:
            result = _run_here(prepared, spec, options, slots[0], stop, observer)
        else:
            release_preflight_data()  # this process only coordinates: the workers load their own
            result = _run_pool(prepared, spec, options, slots, stop, observer)
    if result.stopped_by == "interrupted":
        tracker.end_study(parent_run_id, "interrupted", interrupted=True)
        raise KeyboardInterrupt
    for hook in options.study_hooks:
        hook(study, tracker, parent_run_id)
    best = best_trial(study)
    if best is not None:
        tracker.log_metrics(parent_run_id, {f"best/{spec.search.metric.replace('/', '_')}": best.values[0]})
        tracker.set_tags(parent_run_id, {v.TAG_BEST_TRIAL: str(best.number)})
    tracker.end_study(parent_run_id, result.stopped_by)
    if options.progress:
        observer.study_finished(study_end(tracker, study, result))
    return study


def study_end(tracker: Tracker, study: optuna.Study, result: WorkerResult) -> StudyEnd:
    """How the study ended, and where to compare its runs: the team's server itself, or the `convtune
    ui` of this machine."""
    settings = tracker.settings
    experiment_id = tracker.experiment_id(study.study_name)
    root = redact(settings.tracking_uri) if settings.is_server else "http://127.0.0.1:5000"
    link = study_runs_url(root, experiment_id, view_id=VIEW_ID)
    return StudyEnd(study, result.stopped_by, result.failed, link, settings.is_server)


def release_preflight_data() -> None:
    """Drops the dataset that preflight decoded, its splits, and the allocator's free pages."""
    clear_cache()
    clear_setup_cache()
    release_memory()


def _run_here(
    prepared: PreparedStudy,
    spec: ExperimentSpec,
    options: TuneOptions,
    slot: WorkerSlot,
    stop: StopFlag,
    observer: TuneObserver,
) -> WorkerResult:
    """One worker in this process (the default on a machine with at most one GPU)."""
    # lazy: saves ~4 s (Lightning) at the start of a worker pool, whose parent trains nothing
    from search.study.objective import Objective, TrialSettings
    from search.tracking.artifacts import trial_writers

    study, tracker, checked = prepared.study, prepared.tracker, prepared.checked
    device = options.device if options.device != "cpu" else slot.label
    on_gpu = slot.kind == "cuda"
    settings = TrialSettings(
        device=device,
        accelerator=options.accelerator or ("gpu" if on_gpu else "cpu"),
        artifacts=options.artifacts_for(spec),
        artifact_writers=trial_writers(),
        gpu_ids=list(slot.indices) if on_gpu else None,
    )
    objective = Objective(
        spec,
        tracker,
        study_name=study.study_name,
        parent_run_id=prepared.parent_run_id,
        data_shape=(checked.in_channels, checked.image_size),
        settings=settings,
    )
    guard = TrialGuard(tracker, spec.search.max_retries, worker=device)
    n_trials = options.n_trials or spec.search.n_trials
    return _run_with_progress(
        study, prepared.handle, objective, spec, options, n_trials, observer, guard, stop
    )


def _run_with_progress(
    study: optuna.Study,
    handle: StorageHandle,
    objective: Objective,
    spec: ExperimentSpec,
    options: TuneOptions,
    n_trials: int,
    observer: TuneObserver,
    guard: TrialGuard | None = None,
    stop: StopFlag | None = None,
) -> WorkerResult:
    # lazy, like `_run_here`: a worker pool's parent needs neither torch nor Lightning
    import torch

    from search.study.stopping import StopCallback
    from search.study.trial_progress import TrialProgressCallback

    threads = torch.get_num_threads()
    should_stop = stop if stop is not None else (lambda: False)
    callbacks: list[Callable[[optuna.Trial], pl.Callback]] = [lambda _trial: StopCallback(should_stop)]
    run: dict[str, Any] = {"n_trials": n_trials, "timeout": options.timeout, "guard": guard}
    run["should_stop"] = should_stop
    limit_observers = []
    if options.limit is not None:
        callbacks.append(options.limit.trial_callback)
        limit_observers.append(options.limit.observe)
        run["out_of_time"] = options.limit.out_of_time
    objective.settings.extra_callbacks = callbacks
    try:
        if not options.progress:
            return run_worker(study, handle, objective, observers=limit_observers, **run)
        with observer.watch_trials(study, n_trials, spec.search.metric) as view:
            view.update_study(study)
            objective.settings.extra_callbacks = [
                *callbacks,
                lambda trial: TrialProgressCallback(view, trial.number, spec.search.metric),
            ]
            observers = [view.update_study, refresher_for(objective), *limit_observers]
            return run_worker(study, handle, objective, observers=observers, **run)
    except (KeyboardInterrupt, SystemExit):
        return WorkerResult(0, 0, "interrupted")
    finally:
        torch.set_num_threads(threads)


def _run_pool(
    prepared: PreparedStudy,
    spec: ExperimentSpec,
    options: TuneOptions,
    slots: list[WorkerSlot],
    stop: StopFlag,
    observer: TuneObserver,
) -> WorkerResult:
    """One process per slot; this process shows the study's progress and restarts crashed workers."""
    study, handle, tracker, checked = prepared.study, prepared.handle, prepared.tracker, prepared.checked
    n_trials = options.n_trials or spec.search.n_trials
    storage = handle.url if handle.url.startswith(RDB_PREFIXES) else str(Path(handle.url).resolve())
    folder = Path(".convtune/workers").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    job = WorkerJob(
        spec=experiment_tree(spec),
        study_name=study.study_name,
        storage=storage,
        n_trials=n_trials,
        deadline=time.time() + options.timeout if options.timeout else None,
        parent_run_id=prepared.parent_run_id,
        artifacts=options.artifacts_for(spec),
        in_channels=checked.in_channels,
        image_size=checked.image_size,
        tracking=asdict(tracker.settings),
        slot={},
        clock_path=options.limit.clock_path if options.limit is not None else "",
    )
    guard = TrialGuard(tracker, spec.search.max_retries, worker="parent")
    pool = WorkerPool(slots, job, folder, study=study, handle=handle, guard=guard)
    limit = options.limit
    observe = (lambda: limit.observe(study)) if limit is not None else (lambda: None)
    if options.progress:
        labels, epochs = [slot.label for slot in slots], spec.trainer.max_epochs
        with observer.watch_workers(study, n_trials, spec.search.metric, labels, epochs) as view:
            refresh = StudyPlotsRefresher(tracker, prepared.parent_run_id, enabled=job.artifacts)
            result = pool.run(stop, on_poll=lambda: (view.update_study(study), refresh(study), observe()))
    else:
        result = pool.run(stop, on_poll=observe)
    if result.crashed:
        tail = log_tail(result.crashed[-1].rsplit("log ", 1)[-1].rstrip(")")) if options.progress else ""
        observer.workers_crashed(result.crashed, tail)
    return WorkerResult(result.ran, result.failed, result.stopped_by)
