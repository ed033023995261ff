"""`convtune reproduce`: a trial's exact config retrained deterministically, tested once, registered.

Best (or chosen, or picked within a budget) trial -> plan (`search.reproduce.plan`) -> retraining
(`search.reproduce.retrain`) -> the test split, read once (`search.reproduce.evaluate.final_test`)
-> the run's metrics, tags and artifacts -> the registry. The search never reads the test split; this
is where it is used, once per reproduction.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from optuna.trial import FrozenTrial, TrialState

from lightning_modules.batch_augment import batched_entries
from lightning_modules.config import RunConfig
from lightning_modules.data import resolve_num_workers
from lightning_modules.precision import resolve_precision
from lightning_modules.training import RunParts
from search.experiment.spec import ExperimentSpec
from search.inspect.evaluation import Evaluation, plot_confusion, title_on_test_split
from search.reproduce.evaluate import final_test
from search.reproduce.options import ReproduceOptions
from search.reproduce.plan import Plan, listed, plan_reproduction, select_trial
from search.reproduce.retrain import retrain
from search.reproduce.selection import AveragingReport, TTAChoice
from search.reproduce.teacher import TAUGHT, load_teacher
from search.reproduce.watch import Show, TrainingWatch
from search.study.model_cost import measure_cost
from search.study.pareto import metric_value, pick
from search.study.storage import open_storage
from search.study.study import find_study
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.model_store import InferenceModel
from search.tracking.registry import RegisteredModel, log_and_register, log_model
from search.tracking.tracker import Tracker


@dataclass
class Reproduction:
    """What `reproduce` measured, next to what the original trial measured."""

    trial: FrozenTrial
    config: RunConfig
    metric: str
    original_value: float | None
    value: float
    best_epoch: int
    test: Evaluation
    model: InferenceModel
    run_id: str
    seconds: float
    config_notes: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # config keys set otherwise than the trial had them
    registered: RegisteredModel | None = None
    logged_uri: str | None = None  # the logged model's URI (`models:/m-...`), registered or not
    costs: dict[str, float] = field(default_factory=dict)  # the reproduced network's `cost/` numbers
    weights: str = "raw"  # "ema" / "swa" when the kept (best) epoch's weights are the averaged ones
    tta: TTAChoice | None = None  # test-time augmentation, kept or not (decided on the validation split)
    test_variants: dict[str, float] = field(default_factory=dict)  # reported after the decisions only
    averaging: AveragingReport | None = None  # the kept weights against the final raw ones (measured)

    @property
    def comparable(self) -> bool:
        return self.original_value is not None and not self.changed

    @property
    def matches(self) -> bool:
        return self.comparable and self.value == self.original_value

    def verdict(self) -> str:
        if self.original_value is None:
            return f"trial {self.trial.number} was {self.trial.state.name}: it has no final value to compare."
        if not self.comparable:
            return f"not comparable: the reproduction changed the trial's {listed(self.changed)}."
        if self.matches:
            return f"matches the original to the last digit ({self.metric}={self.value!r})."
        difference = self.value - self.original_value  # type: ignore[operator]
        return (
            f"differs from the original: {self.value!r} vs {self.original_value!r} "
            f"(difference {difference:+.3g}). {self.hint()}"
        ).rstrip()

    def hint(self) -> str:
        """Why a CPU reproduction can differ from its trial, when the config shows a likely cause."""
        data = self.config.data
        augment = self.config.augment
        if augment and data.num_workers == "auto" and not batched_entries(augment, data.augment_backend):
            return (
                "Augmentation streams depend on the DataLoader worker count (data.num_workers: auto "
                f"is {resolve_num_workers('auto')} here, fewer in `tune --workers` processes); set "
                "data.num_workers to a number to pin it."
            )
        if self.config.trainer.accelerator != "cpu" and torch.cuda.is_available():
            return (
                "The search's GPU trials ran without deterministic kernels; set trainer.deterministic: true."
            )
        return ""


def reproduce(
    spec: ExperimentSpec, options: ReproduceOptions, *, overridden: bool = False, show: Show | None = None
) -> Reproduction:
    """Best (or chosen) trial -> deterministic retraining -> test split -> MLflow run -> registry;
    `show` gets the training's epoch and validation metric every few seconds."""
    budget = options.budget()
    handle = open_storage(options.storage)
    study = find_study(handle, options.study_name or spec.name)
    trial = select_trial(study, options.trial) if budget is None else pick(study, budget)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    load_teacher(spec, options)  # a teacher that cannot be loaded stops it here, before its run exists
    plan = plan_reproduction(spec, options, study.study_name, trial, tracker, overridden=overridden)
    started = time.perf_counter()
    try:
        with TrainingWatch(show, tracker.training_progress, spec.search.metric) as watch:
            watch.follow(plan)
            result = _reproduce_in_run(spec, options, plan, tracker)
    except BaseException as error:
        tracker.end_run(plan.run_id, error=error)
        raise
    tracker.end_run(plan.run_id)
    result.seconds = time.perf_counter() - started
    return result


def _reproduce_in_run(
    spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, tracker: Tracker
) -> Reproduction:
    started = time.perf_counter()
    trial, config = plan.trial, plan.config
    retrained = retrain(spec, options, plan, tracker)
    parts, best, model = retrained.parts, retrained.best, retrained.model
    test, test_variants = final_test(model, parts.datamodule, retrained.tta, retrained.averaging)
    original = metric_value(trial) if trial.state == TrialState.COMPLETE else None
    result = Reproduction(
        trial, config, spec.search.metric, original, float(best.best_value), int(best.best_epoch or 0), test,
        model, plan.run_id, time.perf_counter() - started, plan.notes, plan.changed,
    )  # fmt: skip
    result.weights, result.tta, result.test_variants = retrained.weights, retrained.tta, test_variants
    result.averaging = retrained.averaging
    if retrained.deadline_note is not None:
        result.config_notes.append(retrained.deadline_note)
    if retrained.taught:
        result.config_notes += retrained.taught
        result.changed.append(TAUGHT)
    result.costs = _measure(parts, config, precision=resolve_precision(config.trainer.precision, "cpu"))
    _log_results(tracker, result)
    example = parts.datamodule.val_images[:2]
    if options.register:
        tags = {
            v.TAG_REPRODUCTION_OF: trial.user_attrs.get(v.ATTR_RUN_ID, ""),
            v.MODEL_TAG_TEST_ACC: f"{test.accuracy:.6f}",
            **{name: f"{value:.6g}" for name, value in result.costs.items()},
        }
        if options.pick is not None:
            tags[v.MODEL_TAG_PICK] = str(options.budget())
        result.registered = log_and_register(
            model,
            tracker,
            plan.run_id,
            plan.study_name,
            example=example,
            alias=options.alias(),
            tags=tags,
        )
        result.logged_uri = result.registered.model_uri
    else:
        result.logged_uri = log_model(model, tracker, plan.run_id, example=example).model_uri
    return result


def _measure(parts: RunParts, config: RunConfig, *, precision: str) -> dict[str, float]:
    """The reproduced network's `cost/` numbers, measured on the CPU (where `predict` runs it)."""
    data = parts.datamodule
    shape = (data.in_channels, data.image_size, data.num_classes)
    return measure_cost(parts.module.model, config, shape, precision=precision)


def _log_results(tracker: Tracker, result: Reproduction) -> None:
    test = result.test
    metrics = {
        **result.costs,
        **(result.tta.metrics() if result.tta else {}),
        **(result.averaging.metrics() if result.averaging else {}),
        **result.test_variants,
        "test/acc": test.accuracy,
        v.METRIC_OBJECTIVE: result.value,
        v.METRIC_BEST_EPOCH: float(result.best_epoch),
        v.METRIC_TRAIN_SECONDS: result.seconds,
    }
    if result.original_value is not None:
        metrics["original_objective"] = result.original_value
        metrics["objective_difference"] = result.value - result.original_value
    for index, (name, accuracy) in enumerate(test.per_class.items()):
        if accuracy is not None:
            metrics[f"test/acc_class/{index}_{_metric_safe(name)}"] = accuracy
    tracker.log_metrics(result.run_id, metrics)
    tracker.set_tags(
        result.run_id,
        {
            v.TAG_REPRODUCTION_MATCHES: str(result.matches).lower(),
            v.TAG_VERDICT: result.verdict(),
            v.TAG_WEIGHTS: result.weights,
            v.TAG_TTA: ",".join(result.tta.model.tta) if result.tta and result.tta.model.tta else "off",
        },
    )
    with tempfile.TemporaryDirectory(prefix="convtune-test-") as folder:
        path = Path(folder)
        (path / "confusion_matrix.json").write_text(json.dumps(test.to_json(), indent=1))
        plot_confusion(test, path / "confusion_matrix.png", title=title_on_test_split(test))
        comparison = {
            "trial": result.trial.number,
            "metric": result.metric,
            "original": result.original_value,
            "reproduced": result.value,
            "matches": result.matches,
            "changed": result.changed,
            "notes": result.config_notes,
        }
        (path / "reproduction.json").write_text(json.dumps(comparison, indent=1))
        tracker.log_artifacts(result.run_id, path)


def _metric_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
