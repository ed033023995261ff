"""`convtune tune`: every check first (`search.study.preflight`), then the study."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from rich.console import Console

from lightning_modules.data import clear_cache
from lightning_modules.data.splits import clear_setup_cache
from search.cli.progress import StudyProgress, trials_table
from search.experiment.space import flatten_config
from search.experiment.spec import ExperimentSpec
from search.parallel.heartbeat import HEARTBEAT_INTERVAL, TrialGuard
from search.parallel.job import WorkerJob
from search.parallel.memory import release_memory
from search.parallel.plan import WorkerSlot, plan_workers
from search.parallel.pool import WorkerPool, log_tail
from search.parallel.stop_flag import StopFlag
from search.parallel.worker_start import prestart
from search.study.pareto import tag_front
from search.study.preflight import Preflight, preflight
from search.study.study import (
    RDB_PREFIXES,
    StorageHandle,
    WorkerResult,
    best_trial,
    open_storage,
    open_study,
    run_worker,
)
from search.study.warm_start import WarmStartReport, load_source, warm_start
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.settings import redact
from search.tracking.study_plots import StudyPlotsRefresher, log_study_plots, refresher_for
from search.tracking.tracker import Tracker
from search.tracking.ui_links import VIEW_ID, experiment_view_tags, param_columns, study_runs_url

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from search.study.objective import Objective

StudyHook = Callable[[optuna.Study, Tracker, str], None]


class SearchLimit(Protocol):
    """A time budget's hold on the search (`search.time_budget.budgeted.BudgetedSearch`): told when
    the study is
    ready and after every trial, it says when to stop claiming, prunes a trial that outlives the
    search's share, and shares that share with worker processes through `clock_path`."""

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
    progress: bool = True
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


@dataclass
class PreparedStudy:
    """A checked study ready to run: its storage, tracker, parent run and the preflight's findings."""

    study: optuna.Study
    handle: StorageHandle
    tracker: Tracker
    parent_run_id: str
    checked: Preflight
    warm: WarmStartReport | None = None


def prepare_study(spec: ExperimentSpec, options: TuneOptions) -> PreparedStudy:
    """All checks, then the study and its parent run: nothing is written before every check passes.

    A remote storage is checked before the tracking store, so that an unreachable database leaves no
    local MLflow store behind; trials of workers that died earlier are failed and queued for retry.
    """
    checked = preflight(spec)
    remote = bool(options.storage) and options.storage.startswith(RDB_PREFIXES)  # type: ignore[union-attr]
    if remote:
        handle = open_storage(options.storage, heartbeat_interval=HEARTBEAT_INTERVAL)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    if not remote:
        handle = open_storage(options.storage)
    warm = spec.search.warm_start
    source = load_source(warm, handle, options.study_name or spec.name) if warm else None
    study = open_study(spec, handle, options.study_name, (checked.in_channels, checked.image_size))
    parent_run_id = tracker.study_run(study.study_name, study.user_attrs.get(v.STUDY_ATTR_PARENT_RUN))
    report = None
    if warm is not None and source is not None:
        report = warm_start(study, source, spec, warm.top_k)
        where = f" in {redact(warm.storage)}" if warm.storage else ""
        tracker.set_tags(parent_run_id, {v.TAG_WARM_START: f"study {report.source}{where}"})
    study.set_user_attr(v.STUDY_ATTR_PARENT_RUN, parent_run_id)
    study.set_user_attr(v.STUDY_ATTR_EXPERIMENT, spec.model_dump(mode="json"))
    tracker.describe_study(study.study_name, study_view(spec))
    tracker.set_tags(parent_run_id, {v.TAG_STATUS: "running"})
    with handle.claim_lock():
        TrialGuard(tracker, spec.search.max_retries).reap(study)
    return PreparedStudy(study, handle, tracker, parent_run_id, checked, report)


def study_view(spec: ExperimentSpec) -> dict[str, str]:
    """Experiment tags that open the study in MLflow's training view, best trials first, with the
    metric and the searched params as columns (search.tracking.ui_links)."""
    searched = param_columns(spec.search.space, flatten_config(spec.run_config().model_dump(mode="json")))
    metric, direction = spec.search.metric, spec.search.resolved_direction
    return experiment_view_tags(metric, direction, searched, now_ms=int(time.time() * 1000))


def plan(spec: ExperimentSpec, options: TuneOptions) -> list[WorkerSlot]:
    """The worker slots for the options' devices (a `ConfigError` when they cannot be had)."""
    per_trial = spec.trainer.devices if isinstance(spec.trainer.devices, int) else 1
    return plan_workers(options.devices, options.workers, options.trials_per_device, gpus_per_trial=per_trial)


def tune(spec: ExperimentSpec, options: TuneOptions, console: Console | None = None) -> optuna.Study:
    """Runs (or resumes) the study: in this process for one worker, else in one process per slot."""
    console = console or Console(stderr=True)
    if options.timeout is None:
        options.timeout = spec.search.timeout
    slots = plan(spec, options)
    prestart(slots)  # a worker pool's libraries load in the forkserver while the checks run
    prepared = prepare_study(spec, options)
    for note in prepared.checked.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if prepared.warm is not None:
        console.print(prepared.warm.line(), highlight=False)
    study, tracker, parent_run_id = prepared.study, prepared.tracker, prepared.parent_run_id
    if options.limit is not None:
        options.limit.begin(prepared, slots)
    stop = StopFlag()
    with stop.installed():
        if len(slots) == 1:
            result = _run_here(prepared, spec, options, slots[0], stop, console)
        else:
            release_preflight_data()  # this process only coordinates: the workers load their own
            result = _run_pool(prepared, spec, options, slots, stop, console)
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
        console.print(trials_table(study, title=f"study {study.study_name}: top trials"))
        console.print(compare_line(tracker, study.study_name), soft_wrap=True)
        if result.stopped_by == "failures":
            console.print(f"[red]stopped after {result.failed} failed trials; see `convtune status`.[/red]")
    return study


def compare_line(tracker: Tracker, study_name: str) -> str:
    """Where to look at the study: the team's server itself, or `convtune ui` on this machine."""
    settings = tracker.settings
    experiment_id = tracker.experiment_id(study_name)
    if settings.is_server:
        link = study_runs_url(redact(settings.tracking_uri), experiment_id, view_id=VIEW_ID)
        return f"compare the runs: open {link}"
    link = study_runs_url("http://127.0.0.1:5000", experiment_id, view_id=VIEW_ID)
    return f"compare the runs: [bold]convtune ui[/bold], then open {link}"


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
    console: Console,
) -> WorkerResult:
    """One worker in this process (the default on a machine with at most one GPU)."""
    # imported here: saves ~4 s (Lightning) at the start of a worker pool, whose parent trains nothing
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
        study, prepared.handle, objective, spec, options, n_trials, console, guard, stop
    )


def _run_with_progress(
    study: optuna.Study,
    handle: StorageHandle,
    objective: Objective,
    spec: ExperimentSpec,
    options: TuneOptions,
    n_trials: int,
    console: Console,
    guard: TrialGuard | None = None,
    stop: StopFlag | None = None,
) -> WorkerResult:
    import torch

    from search.study.objective import StopCallback
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
        with StudyProgress(study.study_name, n_trials, spec.search.metric, console) as progress:
            progress.update_study(study)
            objective.settings.extra_callbacks = [
                *callbacks,
                lambda trial: TrialProgressCallback(progress, trial.number, spec.search.metric),
            ]
            observers = [progress.update_study, refresher_for(objective), *limit_observers]
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
    console: Console,
) -> WorkerResult:
    """One process per slot; this process shows the study's progress and restarts crashed workers."""
    study, handle, tracker, checked = prepared.study, prepared.handle, prepared.tracker, prepared.checked
    parent_run_id = prepared.parent_run_id
    n_trials = options.n_trials or spec.search.n_trials
    storage = handle.url if handle.url.startswith(RDB_PREFIXES) else str(Path(handle.url).resolve())
    folder = Path(".convtune/workers").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    job = WorkerJob(
        spec=spec.model_dump(mode="json", by_alias=True),
        study_name=study.study_name,
        storage=storage,
        n_trials=n_trials,
        deadline=time.time() + options.timeout if options.timeout else None,
        parent_run_id=parent_run_id,
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
        with StudyProgress(study.study_name, n_trials, spec.search.metric, console) as progress:
            view = WorkersView(progress, slots, spec.trainer.max_epochs, spec.search.metric)
            refresh = StudyPlotsRefresher(tracker, parent_run_id, enabled=job.artifacts)
            result = pool.run(stop, on_poll=lambda: (view.update(study), refresh(study), observe()))
    else:
        result = pool.run(stop, on_poll=observe)
    for crash in result.crashed:
        console.print(
            f"[yellow]worker {crash} ended abnormally; its trial was failed and queued for retry.[/yellow]"
        )
    if result.crashed and options.progress:
        tail = log_tail(result.crashed[-1].rsplit("log ", 1)[-1].rstrip(")"))
        if tail:
            console.print(tail, markup=False, highlight=False)
    return WorkerResult(result.ran, result.failed, result.stopped_by)


class WorkersView:
    """The parent's live panel: the study summary and one line per worker with its running trial."""

    def __init__(self, progress: StudyProgress, slots: list[WorkerSlot], epochs: int, metric: str) -> None:
        self.progress = progress
        self.epochs = epochs
        self.metric = metric
        self.tasks = {
            slot.label: progress.bars.add_task(f"{slot.label:>8}", total=epochs, status="starting")
            for slot in slots
        }

    def update(self, study: optuna.Study) -> None:
        self.progress.update_study(study)
        running = {
            str(t.user_attrs.get(v.ATTR_WORKER)): t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        }
        for label, task in self.tasks.items():
            trial = running.get(label)
            if trial is None:
                self.progress.bars.update(task, completed=0, status="waiting")
                continue
            curve = trial.user_attrs.get(v.ATTR_CURVE, [])  # a Pareto trial reports no intermediate values
            steps = trial.intermediate_values or dict(enumerate(curve, start=1))
            last = f" {self.metric} {steps[max(steps)]:.4f}" if steps else ""
            self.progress.bars.update(
                task,
                completed=len(steps),
                status=f"trial {trial.number} epoch {len(steps)}/{self.epochs}{last}",
            )
