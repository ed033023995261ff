"""`reproduce --top-k K`: retrain the K best distinct trials, choose their ensemble on the validation
split, test it once, register it as one model (`@ensemble`).

Members are retrained one after another in this process, or with `--workers N` in up to N worker
processes at once (`search.reproduce.parallel_members`), each exactly as `reproduce` retrains a
trial (deterministic, weight averaging and test-time augmentation as configured), each in its own
MLflow run nested under the ensemble's run. The weights are chosen on the validation split only
(`search.reproduce.selection.choose_ensemble`: greedy selection with replacement against the plain average);
the test split is read once, by `final_ensemble_test`, after everything is decided.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from optuna.trial import FrozenTrial

from lightning_modules.config import RunConfig
from lightning_modules.data.datamodule import ImageDataModule
from lightning_modules.training import build_datamodule
from search.errors import ConfigError, ConvtuneError
from search.experiment.spec import ExperimentSpec
from search.inspect.evaluation import Evaluation, evaluate_predictions
from search.reproduce.ensemble_model import EnsembleModel
from search.reproduce.evaluate import averaging_test, plain_accuracy
from search.reproduce.member import (
    Member,
    MemberProgress,
    check_same_validation_split,
    member_deadline,
    member_finished,
    member_started,
    train_member,
    validation_digest,
)
from search.reproduce.options import ReproduceOptions
from search.reproduce.pace import Pacing
from search.reproduce.parallel_members import train_in_parallel
from search.reproduce.plan import Plan, PlanFor, plan_reproduction
from search.reproduce.selection import EnsembleChoice, choose_ensemble
from search.reproduce.teacher import load_teacher
from search.reproduce.top_trials import top_trials
from search.reproduce.watch import Show, TrainingWatch
from search.study.storage import open_storage
from search.study.study import find_study
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.registry import ENSEMBLE_ALIAS, RegisteredModel, log_and_register, log_model
from search.tracking.tracker import Tracker

MEMBER_SEEDS_NOTE = (
    "member k trains on trainer.seed = its trial's seed + k (member 0 as its trial did): no two members "
    "start from the same weights or see the same batches; all keep the experiment's splits."
)


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
    logged_uri: str | None = None  # the logged model's URI (`models:/m-...`), registered or not


MEMBER_NOTE = re.compile(r"^trial (?P<trial>\d+): (?P<text>.*)$", re.DOTALL)


def _silent(line: str) -> None:
    """No progress lines."""


def reproduce_ensemble(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    k: int,
    *,
    overridden: bool = False,
    progress: MemberProgress | None = None,
    show: Show | None = None,
) -> EnsembleReproduction:
    """The K best distinct trials retrained, their ensemble chosen on validation, tested, registered;
    `progress` gets a line as each member starts and ends, `show` the training members' epochs and
    validation metric every few seconds."""
    if options.trial is not None or options.pick is not None:
        raise ConfigError("--top-k chooses its trials; give it without --trial or --pick.")
    study = find_study(open_storage(options.storage), options.study_name or spec.name)
    trials, notes = top_trials(study, k, options.distinct or spec.reproduce.distinct)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    teacher = load_teacher(spec, options)  # one that cannot be loaded stops it before any run exists
    if teacher is not None:
        notes.append(
            f"every member is taught by {teacher.uri} (weight {teacher.weight:g}; each member's run "
            f"logs the teacher's validation accuracy as {v.METRIC_TEACHER_VAL_ACC})."
        )
    run_id = tracker.start_ensemble(
        study_name=study.study_name, trial_numbers=[t.number for t in trials], tags={}
    )
    started = time.perf_counter()
    try:
        with TrainingWatch(show, tracker.training_progress, spec.search.metric) as watch:
            result = _in_run(
                spec, options, study.study_name, trials, tracker, run_id, overridden, progress or _silent,
                watch.follow,
            )  # fmt: skip
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
    overridden: bool,
    progress: MemberProgress,
    follow: Callable[[Plan], None],
) -> EnsembleReproduction:
    notes: list[str] = [] if len(trials) == 1 else [MEMBER_SEEDS_NOTE]
    ranks = {trial.number: rank for rank, trial in enumerate(trials)}

    def plan_for(trial: FrozenTrial, epochs: int | None) -> Plan:
        link = {v.TAG_PARENT_RUN: run_id, v.TAG_ENSEMBLE_RUN: run_id}
        paced = options if epochs is None else replace(options, epochs=epochs)
        plan = plan_reproduction(
            spec, paced, study_name, trial, tracker, overridden=overridden, tags=link,
            seed_offset=ranks[trial.number],
        )  # fmt: skip
        follow(plan)
        notes.extend(f"trial {trial.number}: {note}" for note in plan.notes)
        if epochs is not None and epochs != options.epochs:
            planned = options.epochs or spec.trainer.max_epochs
            notes.append(
                f"trial {trial.number}: {epochs} epochs instead of the {planned} planned, at the pace the "
                "members before it kept."
            )
        return plan

    if options.workers > 1 and len(trials) > 1:
        members, datamodule, deadline_notes = _members_in_parallel(spec, options, trials, plan_for, progress)
    else:
        members, datamodule, deadline_notes = _members_one_by_one(
            spec, options, trials, plan_for, tracker, progress
        )
    notes += deadline_notes
    tracker.link_ensemble_members(run_id, [member.run_id for member in members])
    images, labels = datamodule.val_images, datamodule.val_labels
    section = spec.reproduce
    choice = choose_ensemble(
        [member.validation_probabilities(images) for member in members],
        labels,
        criterion=options.select_by or section.select_by,  # type: ignore[arg-type]
        margin=section.greedy_margin if options.greedy_margin is None else options.greedy_margin,
    )
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
    test = final_ensemble_test(ensemble, members, used, datamodule)
    result = EnsembleReproduction(members, choice, ensemble, test, run_id, notes=merged_notes(notes))
    _log(tracker, result)
    if options.register:
        tags = {v.MODEL_TAG_TEST_ACC: f"{test.accuracy:.6f}", v.TAG_ENSEMBLE_METHOD: choice.method}
        result.registered = log_and_register(
            ensemble, tracker, run_id, study_name, example=images[:2], alias=ENSEMBLE_ALIAS, tags=tags
        )
        result.logged_uri = result.registered.model_uri
    else:
        result.logged_uri = log_model(ensemble, tracker, run_id, example=images[:2]).model_uri
    return result


def merged_notes(notes: list[str]) -> list[str]:
    """Members' notes that say the same (`trial 33: X`, `trial 62: X`) as one line where the first
    stood (`trials 33 and 62: X`); every other note as it is."""
    trials_of: dict[str, list[str]] = {}
    for note in notes:
        if member := MEMBER_NOTE.match(note):
            trials_of.setdefault(member["text"], []).append(member["trial"])
    merged: list[str] = []
    for note in notes:
        member = MEMBER_NOTE.match(note)
        if member is None:
            merged.append(note)
        elif (trials := trials_of.pop(member["text"], None)) is not None:
            named = trials[0] if len(trials) == 1 else f"{', '.join(trials[:-1])} and {trials[-1]}"
            merged.append(f"trial{'s' if len(trials) > 1 else ''} {named}: {member['text']}")
    return merged


def _members_one_by_one(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    trials: list[FrozenTrial],
    plan_for: PlanFor,
    tracker: Tracker,
    progress: MemberProgress,
) -> tuple[list[Member], ImageDataModule, list[str]]:
    """Each member retrained in this process, one after another, with its share of the time left
    (and, under a time budget, the epochs that fit in it at the pace of the members before it)."""
    members: list[Member] = []
    notes: list[str] = []
    datamodule: ImageDataModule | None = None
    pacing = Pacing(options.epoch_ceiling, spec.trainer.max_epochs)
    for index, trial in enumerate(trials):
        deadline = member_deadline(options.deadline, len(trials) - index)
        plan = plan_for(trial, pacing.epochs(trial, deadline))
        member_options = replace(options, deadline=deadline, epoch_ceiling=pacing.ceiling_for(trial))
        progress(member_started(index, len(trials), plan, 1))
        started = time.perf_counter()
        member, data, note = train_member(spec, member_options, plan, tracker)
        seconds = time.perf_counter() - started
        pacing.finished(trial, member.training)
        progress(member_finished(index, len(trials), member, seconds, index + 1))
        notes += [] if note is None else [f"trial {trial.number}: {note}"]
        datamodule = datamodule or data
        if data is not datamodule:  # data is decoded once per process: usually the same object
            check_same_validation_split(validation_digest(datamodule), validation_digest(data), trial.number)
        members.append(member)
    assert datamodule is not None  # top_trials returns at least one trial
    return members, datamodule, notes


def _members_in_parallel(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    trials: list[FrozenTrial],
    plan_for: PlanFor,
    progress: MemberProgress,
) -> tuple[list[Member], ImageDataModule, list[str]]:
    """Members retrained in worker processes (`search.reproduce.parallel_members`); this process
    decodes the data once, for the ensemble's choice and its test."""
    configs: list[RunConfig] = []

    def planned(trial: FrozenTrial, epochs: int | None) -> Plan:
        plan = plan_for(trial, epochs)
        configs.append(plan.config)
        return plan

    trained = train_in_parallel(spec, options, trials, planned, options.workers, progress)
    datamodule = build_datamodule(configs[0])
    digest = validation_digest(datamodule)
    notes = []
    for trial, result in zip(trials, trained, strict=True):
        check_same_validation_split(digest, result.validation, trial.number)
        notes += [] if result.note is None else [f"trial {trial.number}: {result.note}"]
    return [result.member for result in trained], datamodule, notes


def final_ensemble_test(
    ensemble: EnsembleModel, members: list[Member], used: list[int], datamodule: ImageDataModule
) -> Evaluation:
    """The one place `reproduce --top-k` reads the test split, after the ensemble is chosen: each
    member's test accuracy (reported, never used to choose), and the ensemble's evaluation, combined
    from the `used` members' test probabilities as its forward combines them (each member's test
    pass runs once)."""
    images, labels = datamodule.test_images, datamodule.test_labels
    probabilities = [member.model.predict(images) for member in members]
    for member, member_probabilities in zip(members, probabilities, strict=True):
        predicted = member_probabilities.argmax(dim=1)
        member.test_accuracy = evaluate_predictions(predicted, labels, ensemble.class_names).accuracy
        if member.averaging is not None:
            plain = plain_accuracy(member.model, member.test_accuracy, images, labels)
            member.averaging_test = averaging_test(member.averaging, plain, images, labels)
    combined = ensemble.combine([probabilities[i] for i in used])
    return evaluate_predictions(combined.argmax(dim=1), labels, ensemble.class_names)


def _log(tracker: Tracker, result: EnsembleReproduction) -> None:
    choice = result.choice
    metrics = {
        "test/acc": result.test.accuracy,
        "val/acc": choice.accuracy,
        "val/nll": choice.nll,
        "val/acc_average": choice.scores["average"],
        "val/acc_greedy": choice.scores["greedy"],
        "val/acc_best_single": choice.scores["best single"],
        **{f"val/nll_{name.replace(' ', '_')}": value for name, value in choice.nll_scores.items()},
        "val/greedy_lead_se": choice.greedy_lead,
        "members": float(len(choice.used)),
    }
    best_single = max(result.members, key=lambda m: m.val_accuracy)
    if best_single.test_accuracy is not None:
        metrics["test/acc_best_single"] = best_single.test_accuracy
    tracker.log_metrics(result.run_id, metrics)
    for member in result.members:
        if member.test_accuracy is not None:
            tracker.log_metrics(member.run_id, {"test/acc": member.test_accuracy})
        if member.averaging_test:
            tracker.log_metrics(member.run_id, member.averaging_test)
    tracker.set_tags(
        result.run_id,
        {
            v.TAG_ENSEMBLE_METHOD: choice.method,
            v.TAG_ENSEMBLE_SELECTED_BY: choice.criterion,
            v.TAG_ENSEMBLE_GREEDY_MARGIN: f"{choice.margin:g}",
            v.TAG_ENSEMBLE_WEIGHTS: ",".join(f"{w:.4g}" for w in choice.weights),
        },
    )
