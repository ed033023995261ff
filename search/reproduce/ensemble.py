"""`reproduce --top-k K`: retrain the K best distinct trials, choose their ensemble on the validation
split, test it once, register it as one model (`@ensemble`).

Members are retrained one after another in this process, each exactly as `reproduce` retrains a
trial (deterministic, weight averaging and test-time augmentation as configured), each in its own
MLflow run nested under the ensemble's run. The weights are chosen on the validation split only
(`search.reproduce.selection.choose_ensemble`: greedy selection with replacement against the plain average);
the test split is read once, by `final_ensemble_test`, after everything is decided.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from lightning_modules.data.datamodule import ImageDataModule
from search.errors import ConfigError, ConvtuneError
from search.experiment.spec import ExperimentSpec
from search.inspect.evaluation import Evaluation, evaluate_model
from search.reproduce.ensemble_model import EnsembleModel
from search.reproduce.evaluate import final_test
from search.reproduce.options import ReproduceOptions
from search.reproduce.plan import Plan, plan_reproduction
from search.reproduce.retrain import retrain
from search.reproduce.selection import EnsembleChoice, accuracy, choose_ensemble
from search.study.pareto import metric_value
from search.study.storage import open_storage
from search.study.study import find_study
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.model_store import InferenceModel
from search.tracking.registry import ENSEMBLE_ALIAS, RegisteredModel, log_and_register
from search.tracking.tracker import Tracker

MAX_TOP_K = 20


@dataclass
class Member:
    """One retrained trial: its model (TTA as chosen) and what it measured on the validation split."""

    trial: FrozenTrial
    run_id: str
    model: InferenceModel
    value: float  # the monitored metric of its best epoch
    weights: str
    val_accuracy: float
    test_accuracy: float | None = None  # reported after the ensemble's test, never used to choose


@dataclass
class EnsembleReproduction:
    members: list[Member]
    choice: EnsembleChoice
    model: EnsembleModel
    test: Evaluation
    run_id: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    registered: RegisteredModel | None = None


def top_trials(study: optuna.Study, k: int) -> tuple[list[FrozenTrial], list[str]]:
    """The `k` best COMPLETE trials with distinct params (a retried or repeated trial counts once)."""
    if not 1 <= k <= MAX_TOP_K:
        raise ConfigError(f"--top-k must be in [1, {MAX_TOP_K}], but got {k}.")
    completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    completed.sort(
        key=lambda t: (-(metric_value(t) or 0.0) if maximize else metric_value(t) or 0.0, t.number)
    )
    chosen: list[FrozenTrial] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for trial in completed:
        key = tuple(sorted((name, repr(value)) for name, value in trial.params.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
        if len(chosen) == k:
            break
    if not chosen:
        raise ConvtuneError(
            f"study {study.study_name!r} has no COMPLETE trial yet; run `convtune tune` first."
        )
    notes = [] if len(chosen) == k else [f"the study has {len(chosen)} distinct COMPLETE trials, not {k}."]
    return chosen, notes


def reproduce_ensemble(
    spec: ExperimentSpec, options: ReproduceOptions, k: int, *, overridden: bool = False
) -> EnsembleReproduction:
    """The K best distinct trials retrained, their ensemble chosen on validation, tested, registered."""
    if options.trial is not None or options.pick is not None:
        raise ConfigError("--top-k chooses its trials; give it without --trial or --pick.")
    study = find_study(open_storage(options.storage), options.study_name or spec.name)
    trials, notes = top_trials(study, k)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    run_id = tracker.start_ensemble(
        study_name=study.study_name, trial_numbers=[t.number for t in trials], tags={}
    )
    started = time.perf_counter()
    try:
        result = _in_run(spec, options, study.study_name, trials, tracker, run_id, overridden=overridden)
    except BaseException as error:
        tracker.end_run(run_id, error=error)
        raise
    tracker.end_run(run_id)
    result.seconds = time.perf_counter() - started
    result.notes = notes + result.notes
    return result


def _in_run(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    study_name: str,
    trials: list[FrozenTrial],
    tracker: Tracker,
    run_id: str,
    *,
    overridden: bool,
) -> EnsembleReproduction:
    members: list[Member] = []
    datamodule: ImageDataModule | None = None
    notes: list[str] = []
    for index, trial in enumerate(trials):
        link = {v.TAG_PARENT_RUN: run_id, v.TAG_ENSEMBLE_RUN: run_id}
        plan = plan_reproduction(spec, options, study_name, trial, tracker, overridden=overridden, tags=link)
        notes += [f"trial {trial.number}: {note}" for note in plan.notes]
        member_options = replace(options, deadline=member_deadline(options.deadline, len(trials) - index))
        member, data, note = _member(spec, member_options, plan, tracker)
        notes += [] if note is None else [f"trial {trial.number}: {note}"]
        datamodule = datamodule or data
        _check_same_validation_split(datamodule, data, trial.number)
        members.append(member)
    assert datamodule is not None  # top_trials returns at least one trial
    tracker.link_ensemble_members(run_id, [member.run_id for member in members])
    images, labels = datamodule.val_images, datamodule.val_labels
    choice = choose_ensemble([member.model.predict(images) for member in members], labels)
    used = choice.used
    try:
        ensemble = EnsembleModel(
            [members[i].model for i in used],
            [choice.weights[i] for i in used],
            method=choice.method,
            source={"study": study_name, "run_id": run_id},
            member_runs=[members[i].run_id for i in used],
        )
    except ValueError as error:
        raise ConvtuneError(f"the {len(used)} chosen trials make no ensemble: {error}") from None
    test = final_ensemble_test(ensemble, members, datamodule)
    result = EnsembleReproduction(members, choice, ensemble, test, run_id, notes=notes)
    _log(tracker, result)
    if options.register:
        tags = {v.MODEL_TAG_TEST_ACC: f"{test.accuracy:.6f}", v.TAG_ENSEMBLE_METHOD: choice.method}
        result.registered = log_and_register(
            ensemble, tracker, run_id, study_name, example=images[:2], alias=ENSEMBLE_ALIAS, tags=tags
        )
    return result


def member_deadline(deadline: float | None, members_left: int) -> float | None:
    """The next member's share of the time left before `deadline`: an equal part for each member left."""
    if deadline is None:
        return None
    now = time.time()
    return now + max(0.0, deadline - now) / max(members_left, 1)


def _member(
    spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, tracker: Tracker
) -> tuple[Member, ImageDataModule, str | None]:
    """One trial retrained in its own run (closed here); no test split is read. Also returns the note
    of a training stopped at the options' deadline."""
    try:
        retrained = retrain(spec, options, plan, tracker)
        data = retrained.parts.datamodule
        val_accuracy = accuracy(retrained.model.predict(data.val_images), data.val_labels)
        best = retrained.best
        tracker.log_metrics(
            plan.run_id,
            {
                **retrained.tta.metrics(),
                v.METRIC_OBJECTIVE: float(best.best_value),  # type: ignore[arg-type]
                v.METRIC_BEST_EPOCH: float(best.best_epoch or 0),
                "val/acc_kept": val_accuracy,
            },
        )
        tracker.set_tags(
            plan.run_id,
            {v.TAG_WEIGHTS: retrained.weights, v.TAG_TTA: ",".join(retrained.model.tta) or "off"},
        )
    except BaseException as error:
        tracker.end_run(plan.run_id, error=error)
        raise
    tracker.end_run(plan.run_id)
    member = Member(
        plan.trial,
        plan.run_id,
        retrained.model,
        float(best.best_value),
        retrained.weights,
        val_accuracy,  # type: ignore[arg-type]
    )
    return member, data, retrained.deadline_note


def _check_same_validation_split(first: ImageDataModule, other: ImageDataModule, trial: int) -> None:
    if first is other:
        return
    same = torch.equal(first.val_labels, other.val_labels) and torch.equal(first.val_images, other.val_images)
    if not same:
        raise ConvtuneError(
            f"trial {trial} validates on other images than the best trial (data.* differs between them); "
            "an ensemble is chosen on one validation split: search data.* fields in another study."
        )


def final_ensemble_test(
    ensemble: EnsembleModel, members: list[Member], datamodule: ImageDataModule
) -> Evaluation:
    """The one place `reproduce --top-k` reads the test split, after the ensemble is chosen: the
    ensemble's evaluation, and each member's test accuracy (reported, never used to choose)."""
    test, _ = final_test(ensemble, datamodule)
    for member in members:
        member.test_accuracy = evaluate_model(
            member.model, datamodule.test_images, datamodule.test_labels
        ).accuracy
    return test


def _log(tracker: Tracker, result: EnsembleReproduction) -> None:
    choice = result.choice
    metrics = {
        "test/acc": result.test.accuracy,
        "val/acc": choice.accuracy,
        "val/nll": choice.nll,
        "val/acc_average": choice.scores["average"],
        "val/acc_greedy": choice.scores["greedy"],
        "val/acc_best_single": choice.scores["best single"],
        "members": float(len(choice.used)),
    }
    best_single = max(result.members, key=lambda m: m.val_accuracy)
    if best_single.test_accuracy is not None:
        metrics["test/acc_best_single"] = best_single.test_accuracy
    tracker.log_metrics(result.run_id, metrics)
    for member in result.members:
        if member.test_accuracy is not None:
            tracker.log_metrics(member.run_id, {"test/acc": member.test_accuracy})
    tracker.set_tags(
        result.run_id,
        {
            v.TAG_ENSEMBLE_METHOD: choice.method,
            v.TAG_ENSEMBLE_WEIGHTS: ",".join(f"{w:.4g}" for w in choice.weights),
        },
    )
