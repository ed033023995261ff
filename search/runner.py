"""`convtune tune` and `convtune check`: every check first, then the study."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from rich.console import Console

from lightning_modules.augment import validate_augmentation
from lightning_modules.data import DatasetNotFoundError
from lightning_modules.training import build_datamodule
from search.artifacts import trial_writers
from search.errors import ConfigError
from search.feasibility import SpaceFeasibility, check_space
from search.objective import Objective, TrialSettings
from search.progress import StudyProgress, TrialProgressCallback, trials_table
from search.spec import ExperimentSpec, set_dotted
from search.study import (
    USER_ATTR_PARENT_RUN,
    StorageHandle,
    WorkerResult,
    best_trial,
    open_storage,
    open_study,
    run_worker,
)
from search.tracking import Tracker, load_settings
from search.weights import check_weights

StudyHook = Callable[[optuna.Study, Tracker, str], None]


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
    study_hooks: list[StudyHook] = field(default_factory=list)


@dataclass
class Preflight:
    """What the checks found: the data's shape and how much of the space is feasible."""

    in_channels: int
    image_size: tuple[int, int]
    num_classes: int
    train_size: int
    val_size: int
    feasibility: SpaceFeasibility


def augmentation_variants(spec: ExperimentSpec) -> list[list[dict[str, Any]]]:
    """The base pipeline, and one pipeline per value the space can give an augmentation argument."""
    variants = [spec.augment]
    for key, param in spec.search.space.items():
        if not key.startswith("augment."):
            continue
        for value in param.candidates():
            tree = spec.run_dict()
            set_dotted(tree, key, value)
            variants.append(tree["augment"])
    return variants


def preflight(spec: ExperimentSpec) -> Preflight:
    """Validates what pydantic cannot: augmentations, the dataset's presence, the architectures."""
    for augment in augmentation_variants(spec):
        problems = validate_augmentation(augment)
        if problems:
            raise ConfigError("augment: " + "; ".join(problems))
    try:
        datamodule = build_datamodule(spec.run_config())
    except DatasetNotFoundError as error:
        raise ConfigError(str(error)) from None
    feasibility = check_space(spec, datamodule.in_channels, datamodule.image_size)
    check_weights(
        spec,
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
        image_size=datamodule.image_size,
    )
    return Preflight(
        datamodule.in_channels,
        datamodule.image_size,
        datamodule.num_classes,
        len(datamodule.train_labels),
        len(datamodule.val_labels),
        feasibility,
    )


def prepare_study(
    spec: ExperimentSpec, options: TuneOptions
) -> tuple[optuna.Study, StorageHandle, Tracker, str, Preflight]:
    """All checks, then the study and its parent run: nothing is written before every check passes."""
    checked = preflight(spec)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    handle = open_storage(options.storage)
    study = open_study(spec, handle, options.study_name)
    parent_run_id = tracker.study_run(study.study_name, study.user_attrs.get(USER_ATTR_PARENT_RUN))
    study.set_user_attr(USER_ATTR_PARENT_RUN, parent_run_id)
    study.set_user_attr("experiment", spec.model_dump(mode="json"))
    tracker.set_tags(parent_run_id, {"convtune.status": "running"})
    return study, handle, tracker, parent_run_id, checked


def tune(spec: ExperimentSpec, options: TuneOptions, console: Console | None = None) -> optuna.Study:
    console = console or Console(stderr=True)
    study, handle, tracker, parent_run_id, checked = prepare_study(spec, options)
    n_trials = options.n_trials or spec.search.n_trials
    settings = TrialSettings(
        device=options.device,
        accelerator=options.accelerator,
        artifacts=spec.search.artifacts if options.artifacts is None else options.artifacts,
        artifact_writers=trial_writers(),
    )
    objective = Objective(
        spec,
        tracker,
        study_name=study.study_name,
        parent_run_id=parent_run_id,
        data_shape=(checked.in_channels, checked.image_size),
        settings=settings,
    )
    result = _run_with_progress(study, handle, objective, spec, options, n_trials, console)
    for hook in options.study_hooks:
        hook(study, tracker, parent_run_id)
    best = best_trial(study)
    if best is not None:
        tracker.log_metrics(parent_run_id, {f"best/{spec.search.metric.replace('/', '_')}": best.value})
        tracker.set_tags(parent_run_id, {"convtune.best_trial": str(best.number)})
    tracker.set_tags(parent_run_id, {"convtune.status": result.stopped_by})
    tracker.client.set_terminated(parent_run_id, "FINISHED")
    if options.progress:
        console.print(trials_table(study, title=f"study {study.study_name}: top trials"))
        experiment_id = tracker.experiment_id(study.study_name)
        console.print(
            f"compare the runs: [bold]convtune ui[/bold], then open "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}"
        )
        if result.stopped_by == "failures":
            console.print(f"[red]stopped after {result.failed} failed trials; see `convtune status`.[/red]")
    return study


def _run_with_progress(
    study: optuna.Study,
    handle: StorageHandle,
    objective: Objective,
    spec: ExperimentSpec,
    options: TuneOptions,
    n_trials: int,
    console: Console,
) -> WorkerResult:
    threads = torch.get_num_threads()
    if not options.progress:
        return run_worker(study, handle, objective, n_trials=n_trials, timeout=options.timeout)
    with StudyProgress(study.study_name, n_trials, spec.search.metric, console) as progress:
        progress.update_study(study)
        objective.settings.extra_callbacks = [
            lambda trial: TrialProgressCallback(progress, trial.number, spec.search.metric)
        ]
        result = run_worker(
            study,
            handle,
            objective,
            n_trials=n_trials,
            timeout=options.timeout,
            observers=[progress.update_study],
        )
    torch.set_num_threads(threads)
    return result
