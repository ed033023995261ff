"""Reproduce a trial: rebuild its exact config, retrain it deterministically, test it, register it.

The search never reads the test split; this is where it is used, once per reproduction.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import Tensor

from lightning_modules.averaging import AveragedWeights
from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.precision import resolve_precision
from lightning_modules.training import RunParts, build_run, create_trainer
from search.errors import ConfigError, ConvtuneError
from search.experiment.budgets import Budget, parse_budget
from search.experiment.dotted import config_from_params
from search.experiment.serialized import config_from_yaml, config_params, config_yaml
from search.experiment.spec import ExperimentSpec
from search.reproduce.selection import TTAChoice, choose_tta
from search.study.model_cost import measure_cost
from search.study.pareto import alias_for, metric_value, pick
from search.study.storage import open_storage
from search.study.study import best_trial, find_study
from search.study.weights import resolve_weights
from search.time_budget.deadlines import TrainingDeadline
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.callbacks import EpochMetricsCallback
from search.tracking.model_store import AnyModel, InferenceModel, inference_model_from_run
from search.tracking.registry import CHAMPION_ALIAS, RegisteredModel, log_and_register
from search.tracking.tracker import Tracker

TAG_REPRODUCTION_OF = v.TAG_REPRODUCTION_OF
REPRODUCIBLE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class ReproduceOptions:
    trial: int | None = None
    epochs: int | None = None
    study_name: str | None = None
    storage: str | None = None
    accelerator: str | None = None
    register: bool = True
    pick: str | None = None  # a budget, like "cost/latency_ms <= 2": the best trial within it
    deadline: float | None = None  # wall clock (`time.time()`): training stops there (`tune --budget`)

    def budget(self) -> Budget | None:
        """`pick` parsed (a `ConfigError` when malformed, or given with `trial`)."""
        if self.pick is None:
            return None
        if self.trial is not None:
            raise ConfigError("give --trial N or --pick BUDGET, not both.")
        try:
            return parse_budget(self.pick)
        except ValueError as error:
            raise ConfigError(f"--pick: {error}.") from None

    def alias(self) -> str:
        """`champion`, or for --pick an alias that says the budget (`latency-2ms`)."""
        budget = self.budget()
        return CHAMPION_ALIAS if budget is None else alias_for(budget)


@dataclass
class Evaluation:
    """Accuracy of predictions against labels: overall, per class, and the confusion matrix."""

    class_names: list[str]
    confusion: Tensor  # (classes, classes) int64, rows: true class, columns: predicted class

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(self.confusion.diagonal().sum()) / max(self.total, 1)

    @property
    def per_class(self) -> dict[str, float | None]:
        """Accuracy (recall) per true class; None for a class absent from the labels."""
        counts = self.confusion.sum(dim=1)
        return {
            name: (float(self.confusion[i, i]) / int(counts[i]) if int(counts[i]) else None)
            for i, name in enumerate(self.class_names)
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "class_names": self.class_names,
            "rows": "true class",
            "columns": "predicted class",
            "matrix": self.confusion.tolist(),
            "accuracy": self.accuracy,
            "per_class_accuracy": self.per_class,
        }


def evaluate_predictions(predicted: Tensor, labels: Tensor, class_names: Sequence[str]) -> Evaluation:
    classes = len(class_names)
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    confusion.index_put_(
        (labels.long().cpu(), predicted.long().cpu()),
        torch.ones(len(labels), dtype=torch.int64),
        accumulate=True,
    )
    return Evaluation(list(class_names), confusion)


def evaluate_model(model: AnyModel, images: Tensor, labels: Tensor) -> Evaluation:
    return evaluate_predictions(model.predict(images).argmax(dim=1), labels, model.class_names)


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
    costs: dict[str, float] = field(default_factory=dict)  # the reproduced network's `cost/` numbers
    weights: str = "raw"  # "ema" / "swa" when the kept (best) epoch's weights are the averaged ones
    tta: TTAChoice | None = None  # test-time augmentation, kept or not (decided on the validation split)
    test_variants: dict[str, float] = field(default_factory=dict)  # reported after the decisions only

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
            return f"not comparable: the reproduction changed the trial's {_listed(self.changed)}."
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
        if self.config.augment and data.num_workers == "auto":
            from lightning_modules.data import resolve_num_workers

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


# ---------------------------------------------------------------------------------------------------
# which trial, which config


def select_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial `number`, or the best COMPLETE trial; a clear error when there is none to reproduce."""
    if number is None:
        best = best_trial(study)
        if best is None:
            raise ConvtuneError(
                f"study {study.study_name!r} has no COMPLETE trial yet; run `convtune tune` first "
                "or pick a trial with --trial N."
            )
        return best
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(
            f"study {study.study_name!r} has no trial {number} (trials 0..{max(trials, default=-1)}); "
            "see `convtune status`."
        )
    trial = trials[number]
    if trial.state not in REPRODUCIBLE_STATES:
        raise ConvtuneError(
            f"trial {number} is {trial.state.name}; only COMPLETE or PRUNED trials can be reproduced."
        )
    return trial


def trial_config(
    spec: ExperimentSpec, trial: FrozenTrial, recorded: RunConfig | None, *, overridden: bool
) -> tuple[RunConfig, list[str]]:
    """The trial's config rebuilt from its params; the config its run recorded wins when the two
    differ (the experiment file changed since), unless the user overrode fields with --set."""
    rebuilt = config_from_params(spec, trial.params)
    if recorded is None:
        return rebuilt, ["the trial's run has no config.yaml; rebuilt from the experiment file and params."]
    differing = _differing_keys(rebuilt, recorded)
    if not differing:
        return rebuilt, []
    if overridden:
        return rebuilt, [f"--set changes the trial's config ({_listed(differing)}); the values may differ."]
    return recorded, [
        f"the experiment file changed since the trial ({_listed(differing)}); using the trial's own config."
    ]


def _listed(keys: list[str], most: int = 6) -> str:
    return ", ".join(keys[:most]) + (" ..." if len(keys) > most else "")


def _differing_keys(a: RunConfig, b: RunConfig) -> list[str]:
    flat_a = config_params(a)
    flat_b = config_params(b)
    return sorted(key for key in flat_a.keys() | flat_b.keys() if flat_a.get(key) != flat_b.get(key))


def recorded_config(tracker: Tracker, run_id: str | None) -> RunConfig | None:
    """The config.yaml a trial's run recorded, or None when there is none to read."""
    text = tracker.read_text(run_id, "config.yaml")
    if text is None:
        return None
    return config_from_yaml(text)


# ---------------------------------------------------------------------------------------------------
# training


def train(
    config: RunConfig,
    metric: str,
    mode: str,
    *,
    callbacks: Sequence[pl.Callback] = (),
    accelerator: str | None = None,
) -> tuple[RunParts, BestWeights, str]:
    """Trains `config` with deterministic algorithms and restores the best epoch's weights; returns
    which weights those are: `raw`, or `ema`/`swa` when the best epoch validated averaged weights.

    Lightning's `deterministic="warn"`: deterministic kernels wherever torch has them (all of them on
    the CPU); a CUDA op without one (e.g. adaptive pooling's backward) warns instead of failing.
    """
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    try:
        parts = build_run(config, weights_resolver=resolve_weights)
        best = BestWeights(metric, "max" if mode == "maximize" else "min")
        overrides: dict[str, Any] = {"deterministic": "warn"}
        if accelerator:
            overrides["accelerator"] = accelerator
        trainer = create_trainer(config.trainer, callbacks=[best, *callbacks], **overrides)
        trainer.fit(parts.module, datamodule=parts.datamodule)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]
    if best.best_value is None:
        raise ConvtuneError(f"the reproduction measured no {metric}; check trainer.limit_val_batches.")
    best.restore(parts.module)
    parts.module.eval()
    return parts, best, kept_weights(trainer, best)


def kept_weights(trainer: pl.Trainer, best: BestWeights) -> str:
    """`ema`/`swa` when the best epoch was validated with averaged weights, else `raw`."""
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, AveragedWeights) and best.best_epoch in callback.averaged_epochs:
            return callback.config.kind
    return "raw"


def to_inference_model(parts: RunParts, config: RunConfig, source: dict[str, str]) -> InferenceModel:
    datamodule, module = parts.datamodule, parts.module
    mean = (module.mean.flatten() / 255).tolist()
    std = (1 / (module.inv_std.flatten() * 255)).tolist()
    return inference_model_from_run(
        module.model,
        model_config=config.model.model_dump(mode="json"),
        data_config=config.data.model_dump(mode="json"),
        in_channels=datamodule.in_channels,
        image_size=datamodule.image_size,
        class_names=datamodule.class_names,
        mean=mean,
        std=std,
        seed=config.seed,
        source=source,
    )


# ---------------------------------------------------------------------------------------------------
# the whole command


def reproduce(spec: ExperimentSpec, options: ReproduceOptions, *, overridden: bool = False) -> Reproduction:
    """Best (or chosen) trial -> deterministic retraining -> test split -> MLflow run -> registry."""
    budget = options.budget()
    handle = open_storage(options.storage)
    study = find_study(handle, options.study_name or spec.name)
    trial = select_trial(study, options.trial) if budget is None else pick(study, budget)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    plan = plan_reproduction(spec, options, study.study_name, trial, tracker, overridden=overridden)
    started = time.perf_counter()
    try:
        result = _reproduce_in_run(spec, options, plan, tracker)
    except BaseException as error:
        tracker.end_run(plan.run_id, error=error)
        raise
    tracker.end_run(plan.run_id)
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class Plan:
    """A trial about to be reproduced: its config, what differs from the trial, and its open run."""

    study_name: str
    trial: FrozenTrial
    config: RunConfig
    notes: list[str]
    changed: list[str]
    run_id: str


def plan_reproduction(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    study_name: str,
    trial: FrozenTrial,
    tracker: Tracker,
    *,
    overridden: bool,
    tags: dict[str, str] | None = None,
) -> Plan:
    """The trial's config (with --epochs), notes on what differs, and its reproduction run, started."""
    original_run = trial.user_attrs.get(v.ATTR_RUN_ID)
    recorded = recorded_config(tracker, original_run)
    config, notes = trial_config(spec, trial, recorded, overridden=overridden)
    trained = recorded if recorded is not None else config  # what the trial trained, as its run tells
    if options.epochs is not None:
        if options.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, but got {options.epochs}.")
        if options.epochs != config.trainer.max_epochs:
            notes.append(
                f"trainer.max_epochs={options.epochs} instead of the trial's {config.trainer.max_epochs}."
            )
            config = config.model_copy(
                update={"trainer": config.trainer.model_copy(update={"max_epochs": options.epochs})}
            )
    precision = resolve_precision(config.trainer.precision, options.accelerator or config.trainer.accelerator)
    notes += precision_notes(tracker, original_run, precision)
    changed = _differing_keys(config, trained)
    run_id = _start_run(
        tracker, study_name, trial, config, original_run, {v.TAG_PRECISION: precision, **(tags or {})}
    )
    return Plan(study_name, trial, config, notes, changed, run_id)


def precision_notes(tracker: Tracker, original_run: str | None, precision: str) -> list[str]:
    """A note when this machine trains in another precision than the trial did (`precision: auto`
    picks bf16 only where the hardware has it), since the result will then differ."""
    trained = tracker.run_tag(original_run, v.TAG_PRECISION)
    if trained is None or trained == precision:
        return []
    return [
        f"trains in precision {precision} here, but the trial trained in {trained}; expect another result."
    ]


def _start_run(
    tracker: Tracker,
    study_name: str,
    trial: FrozenTrial,
    config: RunConfig,
    original_run: str | None,
    tags: dict[str, str],
) -> str:
    run_id = tracker.start_reproduction(
        study_name=study_name, trial_number=trial.number, original_run_id=original_run, tags=tags
    )
    tracker.log_params(run_id, config_params(config))
    tracker.log_text(run_id, config_yaml(config), "config.yaml")
    return run_id


@dataclass
class Retrained:
    """A reproduced trial before the test split: trained, its TTA chosen on the validation split."""

    parts: RunParts
    best: BestWeights
    weights: str
    tta: TTAChoice
    deadline_note: str | None = None  # training stopped at `ReproduceOptions.deadline`

    @property
    def model(self) -> InferenceModel:
        return self.tta.model


def retrain(spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, tracker: Tracker) -> Retrained:
    """Trains the plan's config in its run (until the options' deadline, if any) and decides test-time
    augmentation on the validation split."""
    callbacks: list[pl.Callback] = [EpochMetricsCallback(tracker, plan.run_id)]
    deadline = None if options.deadline is None else TrainingDeadline(options.deadline)
    if deadline is not None:
        callbacks.append(deadline)
    parts, best, weights = train(
        plan.config,
        spec.search.metric,
        spec.search.resolved_direction,
        callbacks=callbacks,
        accelerator=options.accelerator,
    )
    source = {"study": plan.study_name, "trial": str(plan.trial.number), "run_id": plan.run_id}
    data = parts.datamodule
    model = to_inference_model(parts, plan.config, source)
    tta = choose_tta(model, plan.config.evaluate, data.val_images, data.val_labels)
    return Retrained(parts, best, weights, tta, deadline.note() if deadline is not None else None)


def _reproduce_in_run(
    spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, tracker: Tracker
) -> Reproduction:
    started = time.perf_counter()
    trial, config = plan.trial, plan.config
    retrained = retrain(spec, options, plan, tracker)
    parts, best, model = retrained.parts, retrained.best, retrained.model
    test, test_variants = final_test(model, parts.datamodule, retrained.tta)
    original = metric_value(trial) if trial.state == TrialState.COMPLETE else None
    result = Reproduction(
        trial, config, spec.search.metric, original, float(best.best_value), int(best.best_epoch or 0), test,
        model, plan.run_id, time.perf_counter() - started, plan.notes, plan.changed,
    )  # fmt: skip
    result.weights, result.tta, result.test_variants = retrained.weights, retrained.tta, test_variants
    if retrained.deadline_note is not None:
        result.config_notes.append(retrained.deadline_note)
    result.costs = _measure(parts, config, precision=resolve_precision(config.trainer.precision, "cpu"))
    _log_results(tracker, result)
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
            example=parts.datamodule.val_images[:2],
            alias=options.alias(),
            tags=tags,
        )
    return result


def final_test(
    model: AnyModel, datamodule: Any, tta: TTAChoice | None = None
) -> tuple[Evaluation, dict[str, float]]:
    """The one place a reproduction reads the test split, after every decision is taken on the
    validation split: `model`'s evaluation, and (reported, never used to decide) the test accuracy
    with and without test-time augmentation when it was considered."""
    images, labels = datamodule.test_images, datamodule.test_labels
    test = evaluate_model(model, images, labels)
    variants: dict[str, float] = {}
    if tta is not None and tta.tta_accuracy is not None and isinstance(model, InferenceModel):
        other = model.with_tta([] if tta.kept else tta.transforms)
        other_accuracy = evaluate_model(other, images, labels).accuracy
        variants = {
            "test/acc_tta": test.accuracy if tta.kept else other_accuracy,
            "test/acc_plain": other_accuracy if tta.kept else test.accuracy,
        }
    return test, variants


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
        plot_confusion(test, path / "confusion_matrix.png", title="test split")
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


def plot_confusion(evaluation: Evaluation, path: Path, *, title: str) -> Path:
    """Rows: true class, columns: predicted; color: share of the row, numbers: counts (<= 20 classes)."""
    from matplotlib.figure import Figure

    counts = evaluation.confusion
    classes = counts.shape[0]
    shares = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    side = min(4.0 + 0.45 * classes, 16.0)
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    if classes <= 20:
        names = [name if len(name) <= 14 else name[:13] + "…" for name in evaluation.class_names]
        axes.set_xticks(range(classes), names, rotation=45, ha="right", fontsize=8)
        axes.set_yticks(range(classes), names, fontsize=8)
        for true in range(classes):
            for guess in range(classes):
                if int(counts[true, guess]):
                    color = "white" if shares[true, guess] > 0.5 else "black"
                    axes.text(
                        guess,
                        true,
                        str(int(counts[true, guess])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=color,
                    )
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"{title}: {evaluation.total:,} images, accuracy {evaluation.accuracy:.2%}", fontsize=10)
    figure.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------------------------------------
# evaluate a stored model


def evaluate_on_dataset(
    model_ref: str, dataset: str | None = None, root: str | None = None
) -> tuple[Evaluation, str]:
    """Loads a model and evaluates it on a dataset's test split (default: the data it was trained on)."""
    from lightning_modules.config import DataConfig
    from lightning_modules.data import DATASET_NAMES, DatasetNotFoundError, ImageDataModule
    from search.tracking.model_store import load_inference_model

    model = load_inference_model(model_ref)
    values = dict(model.description.data)
    if dataset is not None and dataset != values.get("dataset"):
        if dataset not in DATASET_NAMES:
            raise ConfigError(f"--dataset must be one of {', '.join(DATASET_NAMES)}, but got {dataset!r}.")
        values |= {"dataset": dataset, "root": None}
    if root is not None:
        values["root"] = root
    datamodule = ImageDataModule(DataConfig.model_validate(values), seed=model.description.seed)
    try:
        datamodule.setup()
    except DatasetNotFoundError as error:
        raise ConfigError(str(error)) from None
    if datamodule.num_classes != len(model.class_names):
        raise ConfigError(
            f"{values['dataset']} has {datamodule.num_classes} classes but the model predicts "
            f"{len(model.class_names)}; evaluate it on a dataset with the same classes."
        )
    images = fit_images(datamodule.test_images, model.in_channels, model.image_size)
    return evaluate_model(model, images, datamodule.test_labels), str(values["dataset"])


def fit_images(images: Tensor, channels: int, size: tuple[int, int]) -> Tensor:
    """uint8 (N, C, H, W) converted to `channels` (gray <-> RGB as PIL does) and resized to `size`."""
    from lightning_modules.data.datamodule import resize_images

    if images.shape[1] != channels:
        if images.shape[1] == 1 and channels == 3:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] == 3 and channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(dim=1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            raise ConfigError(f"the data has {images.shape[1]} channels but the model takes {channels}.")
    if tuple(images.shape[2:]) != tuple(size):
        images = resize_images(images.contiguous(), tuple(size))
    return images.contiguous()
