"""Validated configuration of one training run: data, augmentation, model, optimizer, trainer.

These models are the contract between an experiment file and the code that trains. Unknown keys
are refused, numbers are bounded, and every error names the field and the value it got.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

Activation = Literal["relu", "sigmoid", "tanh", "elu", "gelu", "silu", "leaky_relu"]
Pool = Literal["max", "avg", "none"]
Padding = Literal["same", "valid"] | Annotated[int, Field(ge=0)]
DatasetName = Literal["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder"]


MAX_SEED = 2**32 - 1  # what NumPy and Lightning's seed_everything accept
MAX_IMAGE_SIZE = 4096
MAX_CONVS_PER_BLOCK = 64  # a loop bound when a table or a network is built
BadImages = Literal["skip", "stop"]


class StrictModel(BaseModel):
    """Unknown keys refused; `.inf` and `.nan` are no number any setting means."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


def _check_unit_interval(name: str, value: float, *, closed_right: bool = False) -> float:
    upper_ok = value <= 1 if closed_right else value < 1
    if not (value >= 0 and upper_ok):
        bracket = "]" if closed_right else ")"
        raise ValueError(f"{name} must be in [0, 1{bracket}, but got {name}={value}.")
    return value


def _check_freeze(value: str) -> str:
    if value in ("none", "backbone") or (value.startswith("until:") and len(value) > len("until:")):
        return value
    raise ValueError(f"freeze must be 'none', 'backbone' or 'until:<layer>', but got freeze={value!r}.")


class ConvNetConfig(StrictModel):
    """A plain stack of conv blocks: conv(s) -> [batch norm] -> activation -> [pool] -> [dropout].

    `kernel_size`, `stride`, `padding` and `pool` take one value for every block or a list with one
    value per block (the list length must equal `len(channels)`). `weights` (a state dict file, a
    Lightning checkpoint or a `models:/` / `runs:/` URI), `freeze` and `unfreeze_after` fine-tune a
    pre-trained convnet as they do a backbone (`freeze: until:1` freezes block 0). `separable`
    makes every conv but the network's first depthwise separable (MobileNet's): a depthwise
    `kernel_size` conv with the block's stride (one filter per input channel), then a pointwise 1x1
    conv to the block's channels, about `kernel_size`² times fewer weights and multiply-adds.
    """

    name: Literal["convnet"] = "convnet"
    channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 64], min_length=1)
    kernel_size: Annotated[int, Field(ge=1)] | list[Annotated[int, Field(ge=1)]] = 3
    stride: Annotated[int, Field(ge=1)] | list[Annotated[int, Field(ge=1)]] = 1
    padding: Padding | list[Padding] = "same"
    pool: Pool | list[Pool] = "max"
    pool_size: Annotated[int, Field(ge=1)] = 2
    convs_per_block: Annotated[int, Field(ge=1, le=MAX_CONVS_PER_BLOCK)] = 1
    separable: bool = False
    activation: Activation = "relu"
    batch_norm: bool = True
    dropout: float = 0.0
    head_dropout: float = 0.0
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    global_pool: bool = False
    weights: str | None = None
    freeze: str = "none"
    unfreeze_after: Annotated[int, Field(ge=0)] | None = None

    @field_validator("dropout", "head_dropout")
    @classmethod
    def _dropout_range(cls, value: float, info: Any) -> float:
        return _check_unit_interval(info.field_name, value)

    @field_validator("freeze")
    @classmethod
    def _freeze_form(cls, value: str) -> str:
        return _check_freeze(value)

    @model_validator(mode="after")
    def _per_layer_lengths(self) -> ConvNetConfig:
        depth = len(self.channels)
        for field in ("kernel_size", "stride", "padding", "pool"):
            value = getattr(self, field)
            if isinstance(value, list) and len(value) != depth:
                raise ValueError(
                    f"{field} has {len(value)} entries but channels has {depth} blocks; "
                    f"give one {field} per block or a single value."
                )
        return self

    def per_layer(self, field: str) -> list[Any]:
        """The value of a per-block field expanded to one entry per block."""
        value = getattr(self, field)
        return list(value) if isinstance(value, list) else [value] * len(self.channels)


class BackboneConfig(StrictModel):
    """A torchvision backbone adapted to the data's channels, image size and class count."""

    name: str
    pretrained: bool = False
    weights: str | None = None
    input_size: Annotated[int, Field(ge=8, le=MAX_IMAGE_SIZE)] | None = None
    channel_adapt: Literal["repeat", "conv"] = "repeat"
    freeze: str = "none"
    unfreeze_after: Annotated[int, Field(ge=0)] | None = None
    head_dropout: float = 0.0

    @field_validator("head_dropout")
    @classmethod
    def _dropout_range(cls, value: float, info: Any) -> float:
        return _check_unit_interval(info.field_name, value)

    @field_validator("freeze")
    @classmethod
    def _freeze_form(cls, value: str) -> str:
        return _check_freeze(value)


def _model_kind(value: Any) -> str:
    name = value.get("name", "convnet") if isinstance(value, dict) else getattr(value, "name", "convnet")
    return "convnet" if name == "convnet" else "backbone"


ModelConfig = Annotated[
    Annotated[ConvNetConfig, Tag("convnet")] | Annotated[BackboneConfig, Tag("backbone")],
    Discriminator(_model_kind),
]


class DataConfig(StrictModel):
    """Where the images come from and how they are batched.

    `bad_images` (image folders): `skip` leaves out files that cannot be read (empty, truncated,
    not an image) and says how many and which one first; `stop` refuses the dataset instead.
    `image_size` resizes every image to a square; image folders of mixed sizes without it are
    resized to their most common size.
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

    def input_size(self, native: tuple[int, int]) -> tuple[int, int]:
        """The (height, width) a model sees: `image_size` squared when set, else the images' own."""
        return (self.image_size, self.image_size) if self.image_size else native

    @field_validator("val_fraction")
    @classmethod
    def _val_fraction_range(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"val_fraction must be in (0, 1), but got val_fraction={value}.")
        return value

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
    def _unit_range(cls, value: float, info: Any) -> float:
        return _check_unit_interval(info.field_name, value)

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
        if not 0 < value < 1:
            raise ValueError(f"decay must be in (0, 1), but got decay={value}.")
        return value

    @field_validator("start")
    @classmethod
    def _start_range(cls, value: float | None) -> float | None:
        return None if value is None else _check_unit_interval("start", value)

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

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class EvaluateConfig(StrictModel):
    """Test-time augmentation: logits averaged over each image and its `tta` transforms.

    `tta` names deterministic transforms (`HorizontalFlip`, `VerticalFlip`, `Transpose`), as strings
    or `{HorizontalFlip: {}}`. `tta_in_validation` also averages in every epoch's validation (so the
    search's metric and the best epoch include it). `tta_keep`: with `auto`, `reproduce` keeps test-time
    augmentation in the registered model only when it raises the validation accuracy (never judged on
    the test split); with `always`, it keeps it regardless.
    """

    tta: list[str] = Field(default_factory=list)
    tta_in_validation: bool = False
    tta_keep: Literal["auto", "always"] = "auto"

    @field_validator("tta", mode="before")
    @classmethod
    def _deterministic_transforms(cls, value: Any) -> Any:
        from lightning_modules.tta_config import check_tta

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
