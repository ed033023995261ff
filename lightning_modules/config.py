"""Validated configuration of one training run: data, augmentation, model, optimizer, trainer.

These models are the contract between an experiment file and the code that trains. Unknown keys
are refused, numbers are bounded, and every error names the field and the value it got (see
`lightning_modules.strict_model`). The `model:` section's configs live with the models, in
`lightning_modules.models.config`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.registry import ModelConfig
from lightning_modules.strict_model import (
    MAX_IMAGE_SIZE,
    MAX_SEED,
    StrictModel,
    check_open_unit_interval,
    check_unit_interval,
)
from lightning_modules.tta_config import check_tta

DatasetName = Literal["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder"]
BadImages = Literal["skip", "stop"]


class DataConfig(StrictModel):
    """Where the images come from and how they are batched.

    `bad_images` (image folders): `skip` leaves out files that cannot be read (empty, truncated,
    not an image) and says how many and which one first; `stop` refuses the dataset instead.
    `image_size` resizes every image to a square; image folders of mixed sizes without it are
    resized to their most common size.

    `augment_backend` says how `augment:` runs: `batched` applies it to whole batches with tensor
    ops where the batch lies (flips and Affine only; pixel-identical to albumentations for the same
    drawn values), `albumentations` per image in DataLoader workers (any transform), `auto` batched
    when every transform has a batched form, else per image.
    """

    dataset: DatasetName = "digits"
    root: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    batch_size: Annotated[int, Field(ge=1)] = 128
    eval_batch_size: Annotated[int, Field(ge=1)] | None = None
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    image_size: Annotated[int, Field(ge=1, le=MAX_IMAGE_SIZE)] | None = None
    train_fraction: float = 1.0
    classes: list[Annotated[int, Field(ge=0)]] | None = None
    bad_images: BadImages = "skip"
    augment_backend: Literal["auto", "batched", "albumentations"] = "auto"

    def input_size(self, native: tuple[int, int]) -> tuple[int, int]:
        """The (height, width) a model sees: `image_size` squared when set, else the images' own."""
        return (self.image_size, self.image_size) if self.image_size else native

    @field_validator("val_fraction")
    @classmethod
    def _val_fraction_range(cls, value: float) -> float:
        return check_open_unit_interval("val_fraction", value)

    @field_validator("train_fraction")
    @classmethod
    def _train_fraction_range(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], but got train_fraction={value}.")
        return value


class OptimConfig(StrictModel):
    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adamw"
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    l1: Annotated[float, Field(ge=0)] = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: Literal["none", "cosine", "onecycle", "step"] = "none"
    step_size: Annotated[int, Field(ge=1)] = 10
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1
    label_smoothing: float = 0.0
    backbone_lr_scale: Annotated[float, Field(ge=0)] = 1.0

    @field_validator("momentum", "label_smoothing")
    @classmethod
    def _unit_range(cls, value: float, info: ValidationInfo) -> float:
        return check_unit_interval(str(info.field_name), value)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optim.name=sgd and momentum > 0.")
        return self


class WeightAveragingConfig(StrictModel):
    """Averaged weights, validated, tested and exported in place of the raw ones (`kind: none`: off).

    `ema`: an exponential moving average updated after every optimizer step (batch-norm statistics
    averaged alike); `decay` in (0, 1), with `warmup` the decay grows as min(decay, (1 + n) / (10 + n))
    over the first updates so that the average forgets the initial weights. `swa`: the equal average
    of the weights after every optimizer step from `start` on; batch-norm statistics are recomputed
    for the averaged weights over the training images before each validation. `start`: the fraction
    of training (in optimizer steps) before averaging begins (default 0 for ema, 0.75 for swa);
    `lr` (swa only): a constant learning rate from `start` on, in place of the scheduler's.
    """

    kind: Literal["none", "ema", "swa"] = "none"
    decay: float = 0.999
    warmup: bool = True
    start: float | None = None
    lr: Annotated[float, Field(gt=0)] | None = None

    @field_validator("decay")
    @classmethod
    def _decay_range(cls, value: float) -> float:
        return check_open_unit_interval("decay", value)

    @field_validator("start")
    @classmethod
    def _start_range(cls, value: float | None) -> float | None:
        return None if value is None else check_unit_interval("start", value)

    @model_validator(mode="after")
    def _lr_needs_swa(self) -> WeightAveragingConfig:
        if self.lr is not None and self.kind != "swa":
            raise ValueError(f"lr applies to kind=swa only, but got kind={self.kind!r}.")
        return self

    @property
    def start_fraction(self) -> float:
        """`start`, or its default for the kind."""
        if self.start is not None:
            return self.start
        return 0.75 if self.kind == "swa" else 0.0


class TrainerConfig(StrictModel):
    """How a run trains. `seed` seeds the training's randomness alone (initial weights, batch order,
    augmentation draws); unset, the run's `seed` does. The splits always follow the run's `seed`, so
    runs that differ only in `trainer.seed` train and validate on the same images: what an ensemble's
    members need to differ without one training on another's validation images."""

    max_epochs: Annotated[int, Field(ge=1)] = 5
    precision: Literal["32", "16-mixed", "bf16-mixed", "64", "auto"] = "32"
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    strategy: str = "auto"
    deterministic: bool = False
    limit_train_batches: Annotated[float, Field(gt=0)] = 1.0
    limit_val_batches: Annotated[float, Field(gt=0)] = 1.0
    gradient_clip_val: Annotated[float, Field(ge=0)] | None = None
    channels_last: bool = True
    weight_averaging: WeightAveragingConfig = Field(default_factory=WeightAveragingConfig)
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class EvaluateConfig(StrictModel):
    """Test-time augmentation: logits averaged over each image and its `tta` transforms.

    `tta` names deterministic transforms (`HorizontalFlip`, `VerticalFlip`, `Transpose`, as strings
    or `{HorizontalFlip: {}}`; fixed shifts as `{Affine: {translate_px: {x: 1, y: 0}}}`).
    `tta_in_validation` also averages in every epoch's validation (so the search's metric and the best
    epoch include it). `tta_keep`: with `auto`, `reproduce` keeps the prefix of `tta` with the highest
    validation accuracy, and only when it beats no test-time augmentation (never judged on the test
    split); with `always`, it keeps all of them regardless.
    """

    tta: list[str] = Field(default_factory=list)
    tta_in_validation: bool = False
    tta_keep: Literal["auto", "always"] = "auto"

    @field_validator("tta", mode="before")
    @classmethod
    def _deterministic_transforms(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return check_tta(value)

    @model_validator(mode="after")
    def _validation_needs_transforms(self) -> EvaluateConfig:
        if self.tta_in_validation and not self.tta:
            raise ValueError("tta_in_validation needs transforms in tta, like tta: [HorizontalFlip].")
        return self


class RunConfig(StrictModel):
    """Everything one training run needs: the concrete config that a trial trains."""

    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    data: DataConfig = Field(default_factory=DataConfig)
    augment: list[dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ConvNetConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @property
    def training_seed(self) -> int:
        """What seeds initial weights, batch order and augmentation: `trainer.seed`, else `seed`."""
        return self.seed if self.trainer.seed is None else self.trainer.seed

    @field_validator("augment")
    @classmethod
    def _one_transform_per_entry(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, entry in enumerate(value):
            if len(entry) != 1:
                raise ValueError(
                    f"augment[{index}] must name exactly one transform, like {{HorizontalFlip: {{p: 0.5}}}}, "
                    f"but got keys {sorted(entry)}."
                )
        return value
