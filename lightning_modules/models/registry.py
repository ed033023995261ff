"""Model registry: `@register_model(name)` factories and `create_model(name, ...)`, timm style.

A factory takes keyword arguments only: `in_channels`, `num_classes`, `image_size` and the fields of
the model's config (validated by the factory, unknown ones refused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from torch import Tensor, nn

from lightning_modules.config import BackboneConfig, ConvNetConfig

ModelFactory = Callable[..., nn.Module]
WeightsResolver = Callable[[str], Mapping[str, Tensor]]
F = TypeVar("F", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering `factory(*, in_channels, num_classes, image_size, **fields)` as `name`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, but got name={name!r}.")

    def decorate(factory: F) -> F:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ValueError(f"model {name!r} is already registered by {_MODELS[name].__qualname__}.")
        _MODELS[name] = factory
        return factory

    return decorate


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_MODELS)


def check_dims(in_channels: int, num_classes: int, image_size: int | Sequence[int]) -> tuple[int, int]:
    """Validate the data-dependent sizes every model needs; returns `image_size` as `(H, W)`."""
    for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an int >= 1, but got {label}={value!r}.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            f"image_size must be two ints >= 1 (height, width), but got image_size={image_size!r}."
        )
    return size[0], size[1]


def create_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    weights_resolver: WeightsResolver | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model `name` for the data's channels, class count and image size.

    `overrides` are fields of the model's config (`ConvNetConfig` for `convnet`, `BackboneConfig`
    for torchvision backbones). `weights_resolver` turns a `weights` URI (`models:/...`,
    `runs:/...`) into a state dict; without one only local paths are accepted.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}.")
    size = check_dims(in_channels, num_classes, image_size)
    extra = {"weights_resolver": weights_resolver} if weights_resolver is not None else {}
    return _MODELS[name](
        in_channels=in_channels, num_classes=num_classes, image_size=size, **extra, **overrides
    )


def model_from_config(
    config: ConvNetConfig | BackboneConfig,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    weights_resolver: WeightsResolver | None = None,
) -> nn.Module:
    """`create_model(config.name, ...)` with every other field of `config` as an override.

    Models come back with `weights` loaded and `freeze` applied (`unfreeze_after` is left to the
    training loop).
    """
    if not isinstance(config, (ConvNetConfig, BackboneConfig)):
        raise TypeError(f"config must be a ConvNetConfig or BackboneConfig, but got {type(config).__name__}.")
    fields = config.model_dump(exclude={"name"})
    return create_model(
        config.name,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        weights_resolver=weights_resolver,
        **fields,
    )
