"""Retraining a planned trial: deterministic kernels, the best epoch's weights kept (raw, EMA or SWA),
test-time augmentation decided on the validation split. Nothing here reads the test split.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch

from lightning_modules.averaging import AveragedWeights
from lightning_modules.callbacks import BestWeights, EpochClock
from lightning_modules.config import RunConfig
from lightning_modules.training import RunParts, build_run, create_trainer
from search.errors import ConvtuneError
from search.experiment.spec import ExperimentSpec
from search.reproduce.options import ReproduceOptions
from search.reproduce.pace import TrainingTime
from search.reproduce.plan import Plan
from search.reproduce.selection import AveragingReport, TTAChoice, accuracy, choose_tta
from search.reproduce.teacher import TeacherReport, load_teacher
from search.study.weights import resolve_weights
from search.time_budget.deadlines import TrainingDeadline
from search.tracking import vocabulary as v
from search.tracking.callbacks import EpochMetricsCallback
from search.tracking.model_store import InferenceModel, inference_model_from_run
from search.tracking.tracker import Tracker


def train(
    config: RunConfig,
    metric: str,
    mode: str,
    *,
    callbacks: Sequence[pl.Callback] = (),
    accelerator: str | None = None,
    prepare: Callable[[RunParts], None] | None = None,
) -> tuple[RunParts, BestWeights, str, dict[str, torch.Tensor] | None]:
    """Trains `config` with deterministic algorithms and restores the best epoch's weights; returns
    which weights those are (`raw`, or `ema`/`swa` when the best epoch validated averaged weights)
    and, under weight averaging, the module's final raw weights (else None). `prepare` gets the built
    run before training (a teacher's soft targets go in there).

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
        if prepare is not None:
            prepare(parts)
        best = BestWeights(metric, "max" if mode == "maximize" else "min")
        overrides: dict[str, str] = {"deterministic": "warn"}
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
    return parts, best, kept_weights(trainer, best), final_raw_state(trainer)


def kept_weights(trainer: pl.Trainer, best: BestWeights) -> str:
    """`ema`/`swa` when the best epoch was validated with averaged weights, else `raw`."""
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, AveragedWeights) and best.best_epoch in callback.averaged_epochs:
            return callback.config.kind
    return "raw"


def final_raw_state(trainer: pl.Trainer) -> dict[str, torch.Tensor] | None:
    """The raw weights that weight averaging replaced at the end of training (None without it)."""
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, AveragedWeights):
            return callback.raw_final_state
    return None


def to_inference_model(
    parts: RunParts, config: RunConfig, source: dict[str, str], *, network: torch.nn.Module | None = None
) -> InferenceModel:
    """`parts`' network (or `network`, the same architecture) with its normalization and classes."""
    datamodule, module = parts.datamodule, parts.module
    mean = (module.mean.flatten() / 255).tolist()
    std = (1 / (module.inv_std.flatten() * 255)).tolist()
    return inference_model_from_run(
        module.model if network is None else network,
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


@dataclass
class Retrained:
    """A reproduced trial before the test split: trained, its TTA chosen on the validation split."""

    parts: RunParts
    best: BestWeights
    weights: str
    tta: TTAChoice
    deadline_note: str | None = None  # training stopped at `ReproduceOptions.deadline`
    averaging: AveragingReport | None = None  # the kept weights against the final raw ones
    training: TrainingTime | None = None  # how long its start and its epochs took
    # `reproduce.teacher`: who taught it and how well the teacher validates (and a note on its splits)
    taught: list[str] = field(default_factory=list)

    @property
    def model(self) -> InferenceModel:
        return self.tta.model


def retrain(spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, tracker: Tracker) -> Retrained:
    """Trains the plan's config in its run (until the options' deadline, if any) and decides test-time
    augmentation on the validation split."""
    clock = EpochClock()
    callbacks: list[pl.Callback] = [clock, EpochMetricsCallback(tracker, plan.run_id)]
    deadline = None
    if options.deadline is not None:
        deadline = TrainingDeadline(
            options.deadline,
            ceiling=options.epoch_ceiling,
            on_replan=lambda epochs: tracker.set_tags(plan.run_id, {v.TAG_EPOCHS_REPLANNED: str(epochs)}),
        )
        callbacks.append(deadline)
    teacher = load_teacher(spec, options)
    taught: list[TeacherReport] = []
    if teacher is not None:
        tracker.log_params(plan.run_id, teacher.params())
    parts, best, weights, raw_state = train(
        plan.config,
        spec.search.metric,
        spec.search.resolved_direction,
        callbacks=callbacks,
        accelerator=options.accelerator,
        prepare=None if teacher is None else lambda parts: taught.append(teacher.teach(parts.datamodule)),
    )
    source = {"study": plan.study_name, "trial": str(plan.trial.number), "run_id": plan.run_id}
    data = parts.datamodule
    model = to_inference_model(parts, plan.config, source)
    tta = choose_tta(model, plan.config.evaluate, data.val_images, data.val_labels)
    note = deadline.note() if deadline is not None else None
    averaging = None
    if raw_state is not None:
        raw_model = raw_inference_model(parts, plan.config, source, raw_state)
        raw_accuracy = accuracy(raw_model.predict(data.val_images), data.val_labels)
        kind = plan.config.trainer.weight_averaging.kind
        averaging = AveragingReport(kind, weights, raw_model, raw_accuracy, tta.plain_accuracy)
    training = TrainingTime(clock.startup, clock.seconds, clock.epochs)
    retrained = Retrained(parts, best, weights, tta, note, averaging, training)
    if teacher is not None and taught:
        tracker.log_metrics(plan.run_id, {v.METRIC_TEACHER_VAL_ACC: taught[0].val_accuracy})
        retrained.taught = [taught[0].describe(teacher), *([taught[0].note] if taught[0].note else [])]
    return retrained


def raw_inference_model(
    parts: RunParts, config: RunConfig, source: dict[str, str], raw_state: dict[str, torch.Tensor]
) -> InferenceModel:
    """The inference model of `parts` with the module's final raw weights in place of the kept ones
    (the module itself is left as it is)."""
    network = copy.deepcopy(parts.module.model)
    prefix = "model."
    network.load_state_dict({k.removeprefix(prefix): t for k, t in raw_state.items() if k.startswith(prefix)})
    return to_inference_model(parts, config, source, network=network).eval()
