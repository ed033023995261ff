"""A reproduction taught by a trained model: knowledge distillation as soft targets.

The teacher (a registered `@champion` or `@ensemble`, a logged run's model or a saved file) predicts
every training image once, with the test-time augmentation it is served with; each image's label is
blended with those probabilities (`lightning_modules.distillation`) and the network is trained on
the blend. The teacher sees the training and validation splits only, never the test split.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_modules.data.splits import ImageSplits
from search.errors import ConfigError, ConvtuneError, first_line
from search.experiment.spec import ExperimentSpec, TeacherConfig
from search.reproduce.images import fit_images
from search.reproduce.options import ReproduceOptions
from search.reproduce.selection import accuracy
from search.tracking.model_store import AnyModel, load_inference_model

TAUGHT = "training targets (a teacher's)"  # what a taught reproduction changed, in its verdict
DEFAULT_WEIGHT = TeacherConfig.model_fields["weight"].default
# the data fields that decide which images fall in the validation split (with the seed)
SPLIT_FIELDS = ("dataset", "val_fraction", "classes")


def teacher_config(spec: ExperimentSpec, options: ReproduceOptions) -> TeacherConfig | None:
    """The teacher asked for: `--teacher`/`--teacher-weight` over the experiment's `reproduce.teacher`."""
    section = spec.reproduce.teacher
    uri = options.teacher or (section.model if section else None)
    if uri is None:
        if options.teacher_weight is not None:
            raise ConfigError("--teacher-weight weighs a teacher; give one with --teacher MODEL.")
        return None
    weight = options.teacher_weight
    if weight is None:
        weight = section.weight if section else DEFAULT_WEIGHT
    return TeacherConfig(model=uri, weight=weight)


def load_teacher(spec: ExperimentSpec, options: ReproduceOptions) -> Teacher | None:
    """The teacher asked for, loaded (a `ConvtuneError` line when it cannot be), or None."""
    config = teacher_config(spec, options)
    return None if config is None else Teacher.load(config)


# The last teacher predictions, by the teacher's digest and the images: (images, probabilities). The
# members of an ensemble trained one after another in a process share their data's tensors (the
# splits are cached per process), so a teacher predicts the training split once per process, not
# once per member.
_predicted: dict[str, tuple[Tensor, Tensor]] = {}
MEMO_SIZE = 2  # the training and the validation split


@dataclass
class Teacher:
    """A loaded teacher: its URI, its weight in the blend, its model."""

    uri: str
    weight: float
    model: AnyModel

    @classmethod
    def load(cls, config: TeacherConfig) -> Teacher:
        """The teacher's model, or one line that says why it cannot be loaded (before any training)."""
        try:
            model = load_inference_model(config.model)
        except ConvtuneError as error:
            raise ConfigError(f"the teacher: {first_line(error, limit=None)}") from None
        return cls(config.model, config.weight, model)

    def params(self) -> dict[str, Any]:
        return {"teacher": self.uri, "teacher_weight": self.weight}

    def teach(self, data: ImageSplits) -> TeacherReport:
        """Makes `data` train on its labels blended with this teacher's probabilities."""
        started = time.perf_counter()
        self.check(data)
        probabilities = self.probabilities(data.train_images)
        data.distill(probabilities, self.weight)
        val_accuracy = accuracy(self.probabilities(data.val_images), data.val_labels)
        return TeacherReport(val_accuracy, time.perf_counter() - started, self.split_note(data))

    def probabilities(self, images: Tensor) -> Tensor:
        """The teacher's class probabilities for uint8 `images`, predicted as it is served; the same
        images (the same tensor) by the same teacher are predicted once per process."""
        key = f"{self.digest()}:{id(images)}"  # the memo holds `images`: no other tensor takes its id
        memo = _predicted.get(key)
        if memo is not None and memo[0] is images:
            return memo[1]
        model = self.model
        predicted = model.predict(fit_images(images, model.in_channels, tuple(model.image_size)))
        _predicted[key] = (images, predicted)
        while len(_predicted) > MEMO_SIZE:
            del _predicted[next(iter(_predicted))]
        return predicted

    def digest(self) -> str:
        """The teacher's fingerprint: its description and every weight (a moved alias, a new file: a new
        digest)."""
        hashed = hashlib.sha256(self.model.description.to_json().encode())
        for name, tensor in self.model.state_dict().items():
            hashed.update(name.encode())
            hashed.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return hashed.hexdigest()

    def check(self, data: ImageSplits) -> None:
        if list(self.model.class_names) != data.class_names:
            raise ConfigError(
                f"the teacher {self.uri} predicts the classes {_short(self.model.class_names)}, but this "
                f"data has {_short(data.class_names)}; use a teacher trained on the same classes."
            )

    def split_note(self, data: ImageSplits) -> str | None:
        """A note when the teacher was trained on other splits of the data than this run's: then what
        it learnt from this run's validation images reaches the student, and validation flatters it."""
        description = self.model.description
        trained = description.data
        seed = getattr(description, "seed", None)
        if seed is None:  # an ensemble: its members share their data
            seed = description.members[0].seed  # type: ignore[union-attr]
        here = data.data.model_dump(mode="json")
        differs = [name for name in SPLIT_FIELDS if trained.get(name) != here.get(name)]
        if seed != data.seed:
            differs.append("seed")
        if not differs:
            return None
        return (
            f"the teacher was trained on other splits than this run's ({', '.join(differs)} differ): it "
            "may have trained on images of this validation split, which then flatters the student."
        )


@dataclass(frozen=True)
class TeacherReport:
    val_accuracy: float  # the teacher's own, on this run's validation split
    seconds: float  # predicting the training and validation splits
    note: str | None = None

    def describe(self, teacher: Teacher) -> str:
        return (
            f"taught by {teacher.uri} (weight {teacher.weight:g}; the teacher's validation accuracy "
            f"{self.val_accuracy:.4f}; its predictions took {self.seconds:.1f} s)"
        )


def _short(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return f"[{shown}, ...] ({len(names)})" if len(names) > most else f"[{shown}]"
