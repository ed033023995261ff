"""The configs of the two model families: `ConvNetConfig` (the `convnet`) and `BackboneConfig`
(torchvision backbones). Which config a `model:` section is, and everything else that differs by
family, is decided in `lightning_modules.models.registry`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lightning_modules.strict_model import MAX_IMAGE_SIZE, StrictModel, check_unit_interval

Activation = Literal["relu", "sigmoid", "tanh", "elu", "gelu", "silu", "leaky_relu"]
Pool = Literal["max", "avg", "none"]
Padding = Literal["same", "valid"] | Annotated[int, Field(ge=0)]
MAX_CONVS_PER_BLOCK = 64  # a loop bound when a table or a network is built


def check_freeze(value: object) -> str:
    """`value` if it is a freeze mode: `none`, `backbone` or `until:<layer>`; else a `ValueError`."""
    if isinstance(value, str) and (
        value in ("none", "backbone") or (value.startswith("until:") and len(value) > len("until:"))
    ):
        return value
    raise ValueError(f"freeze must be 'none', 'backbone' or 'until:<layer>', but got freeze={value!r}.")


class _FineTunable(StrictModel):
    """What both families check alike: dropouts in [0, 1) and the `freeze` mode (the fields are theirs)."""

    @field_validator("dropout", "head_dropout", check_fields=False)
    @classmethod
    def _dropout_range(cls, value: float, info: ValidationInfo) -> float:
        return check_unit_interval(str(info.field_name), value)

    @field_validator("freeze", check_fields=False)
    @classmethod
    def _freeze_form(cls, value: str) -> str:
        return check_freeze(value)


class ConvNetConfig(_FineTunable):
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


class BackboneConfig(_FineTunable):
    """A torchvision backbone adapted to the data's channels, image size and class count."""

    name: str
    pretrained: bool = False
    weights: str | None = None
    input_size: Annotated[int, Field(ge=8, le=MAX_IMAGE_SIZE)] | None = None
    channel_adapt: Literal["repeat", "conv"] = "repeat"
    freeze: str = "none"
    unfreeze_after: Annotated[int, Field(ge=0)] | None = None
    head_dropout: float = 0.0
