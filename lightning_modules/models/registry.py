"""Model families and the model registry: the one place that knows which kind of model a config is.

Two families: the `convnet` (`ConvNetConfig`: layers listed in the config, its architecture table
computed by arithmetic before anything is built) and the torchvision backbones (`BackboneConfig`:
networks that must be built to be measured). `ModelConfig` picks the config class from `name`,
`has_arithmetic_table`/`layer_table` the way to tabulate a network, `model_from_config` the factory.

Factories are registered timm style, `@register_model(name)`, and take keyword arguments only:
`in_channels`, `num_classes`, `image_size` and the fields of the model's config (validated by the
factory, unknown ones refused). No torch at import: `convtune status` reads the families and the
convnet's tables without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard, TypeVar

from pydantic import Discriminator, Tag

from lightning_modules.models.config import BackboneConfig, ConvNetConfig
from lightning_modules.models.layer_table import LayerInfo, check_dims
from lightning_modules.models.shapes import architecture_table

if TYPE_CHECKING:
    from torch import nn

    from lightning_modules.models.weights import WeightsResolver

Family = Literal["convnet", "backbone"]
FAMILIES: dict[Family, type[ConvNetConfig] | type[BackboneConfig]] = {
    "convnet": ConvNetConfig,
    "backbone": BackboneConfig,
}
ModelFactory = Callable[..., "nn.Module"]
F = TypeVar("F", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


def family(name: str) -> Family:
    """The family of the model called `name`: `convnet`, or `backbone` for every other name."""
    return "convnet" if name == "convnet" else "backbone"


def _family_of(value: Any) -> Family:
    name = value.get("name", "convnet") if isinstance(value, dict) else getattr(value, "name", "convnet")
    return family(name)


ModelConfig = Annotated[
    Annotated[ConvNetConfig, Tag("convnet")] | Annotated[BackboneConfig, Tag("backbone")],
    Discriminator(_family_of),
]


# ----------------------------------------------------------------------------- architecture tables


def has_arithmetic_table(config: ConvNetConfig | BackboneConfig) -> TypeGuard[ConvNetConfig]:
    """Whether the config's architecture table follows from the config alone, with no network built
    and no torch (`lightning_modules.models.shapes`: the `convnet`); other families are traced."""
    return isinstance(config, ConvNetConfig)


def layer_table(
    config: ConvNetConfig | BackboneConfig,
    in_channels: int,
    image_size: tuple[int, int],
    num_classes: int,
    network: nn.Module | None = None,
) -> list[LayerInfo]:
    """The architecture table of the config's network: by arithmetic where the family allows it,
    else traced through `network` (built from `config` when not given)."""
    if has_arithmetic_table(config):
        return architecture_table(config, in_channels, image_size, num_classes)
    from lightning_modules.models.tracing import traced_table  # lazy: keeps this module free of torch

    if network is None:
        network = model_from_config(
            config, in_channels=in_channels, num_classes=num_classes, image_size=image_size
        )
    return traced_table(network, in_channels, image_size)


# ----------------------------------------------------------------------------- the registry


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


def _register_builtin_models() -> None:
    """Import the modules whose factories register the built-in models (once; later calls are free)."""
    # lazy: they import torch, which `convtune status` does without (it reads the families above)
    from lightning_modules.models import backbones, convnet  # noqa: F401


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    _register_builtin_models()
    return sorted(_MODELS)


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
    _register_builtin_models()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}.")
    size = check_dims(in_channels, image_size, num_classes)
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
    if not isinstance(config, tuple(FAMILIES.values())):
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
