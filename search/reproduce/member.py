"""One member of an ensemble: a top trial retrained in its own MLflow run, measured on the validation
split only. Used by `search.reproduce.ensemble` one member after another, and by
`search.reproduce.parallel_members` in worker processes.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import FrozenTrial
from torch import Tensor

from lightning_modules.data.datamodule import ImageDataModule
from search.errors import ConvtuneError
from search.experiment.spec import ExperimentSpec
from search.reproduce.options import ReproduceOptions
from search.reproduce.pace import TrainingTime
from search.reproduce.plan import Plan
from search.reproduce.retrain import retrain
from search.reproduce.selection import AveragingReport, accuracy
from search.time_budget.split import format_duration
from search.tracking import vocabulary as v
from search.tracking.model_store import MODEL_FILE, InferenceModel
from search.tracking.tracker import Tracker

MemberProgress = Callable[[str], None]  # gets one line as each member starts and as it ends
MEMBER_MODEL_PATH = "member"  # the artifact folder of a member's model file: `runs:/<member run>/member`


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
    averaging: AveragingReport | None = None  # the kept weights against the final raw ones (measured)
    averaging_test: dict[str, float] = field(default_factory=dict)  # their test accuracies, without TTA
    val_probabilities: Tensor | None = None  # the model's on the validation split, as measured
    training: TrainingTime | None = None  # its training as clocked (start-up, epochs)

    def validation_probabilities(self, images: Tensor) -> Tensor:
        """The model's probabilities on the validation split `images`: those measured after training,
        or predicted now where they were not kept."""
        return self.val_probabilities if self.val_probabilities is not None else self.model.predict(images)


def member_started(index: int, count: int, plan: Plan, training: int) -> str:
    """`member 0: trial 58 started, 21 epochs (2 of 4 training)`."""
    epochs = plan.config.trainer.max_epochs
    return (
        f"member {index}: trial {plan.trial.number} started, {epochs} epoch{'s' if epochs > 1 else ''} "
        f"({training} of {count} training)"
    )


def member_finished(index: int, count: int, member: Member, seconds: float, done: int) -> str:
    """`member 0: trial 58 trained in 18m, validation accuracy 0.9510 (1 of 4 done)`."""
    return (
        f"member {index}: trial {member.trial.number} trained in {format_duration(seconds)}, "
        f"validation accuracy {member.val_accuracy:.4f} ({done} of {count} done)"
    )


def member_deadline(deadline: float | None, members_left: int) -> float | None:
    """The next member's share of the time left before `deadline`: an equal part for each member left."""
    if deadline is None:
        return None
    now = time.time()
    return now + max(0.0, deadline - now) / max(members_left, 1)


def train_member(
    spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, tracker: Tracker
) -> tuple[Member, ImageDataModule, str | None]:
    """One trial retrained in its own run (closed here); no test split is read. Also returns the note
    of a training stopped at the options' deadline."""
    try:
        retrained = retrain(spec, options, plan, tracker)
        data = retrained.parts.datamodule
        val_probabilities = retrained.tta.probabilities
        if val_probabilities is None:
            val_probabilities = retrained.model.predict(data.val_images)
        val_accuracy = accuracy(val_probabilities, data.val_labels)
        best = retrained.best
        tracker.log_metrics(
            plan.run_id,
            {
                **retrained.tta.metrics(),
                **(retrained.averaging.metrics() if retrained.averaging else {}),
                v.METRIC_OBJECTIVE: float(best.best_value),  # type: ignore[arg-type]
                v.METRIC_BEST_EPOCH: float(best.best_epoch or 0),
                "val/acc_kept": val_accuracy,
            },
        )
        tracker.set_tags(
            plan.run_id,
            {v.TAG_WEIGHTS: retrained.weights, v.TAG_TTA: ",".join(retrained.model.tta) or "off"},
        )
        keep_member_model(tracker, plan.run_id, retrained.model)
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
        averaging=retrained.averaging,
        val_probabilities=val_probabilities,
        training=retrained.training,
    )
    return member, data, retrained.deadline_note


def keep_member_model(tracker: Tracker, run_id: str, model: InferenceModel) -> None:
    """The member's model file in its run, whether or not the ensemble uses it: any member can be
    predicted with, explained or re-chosen later (`runs:/<member run>/member`). Under a second: no
    MLflow model format, no signature, just the tensors and the description."""
    with tempfile.TemporaryDirectory(prefix="convtune-member-") as folder:
        model.save(Path(folder) / MODEL_FILE)
        tracker.log_artifacts(run_id, folder, MEMBER_MODEL_PATH)


def validation_digest(data: ImageDataModule) -> str:
    """A fingerprint of the validation split (images and labels), to compare splits across processes."""
    digest = hashlib.sha256()
    for tensor in (data.val_labels, data.val_images):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_same_validation_split(first: str, other: str, trial: int) -> None:
    """`first` and `other` are `validation_digest`s: an ensemble is chosen on one validation split."""
    if first != other:
        raise ConvtuneError(
            f"trial {trial} validates on other images than the best trial (data.* differs between them); "
            "an ensemble is chosen on one validation split: search data.* fields in another study."
        )
