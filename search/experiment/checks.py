"""What an experiment's field validators cannot see: values anywhere in the file that no setting
means, options that need another setting, and every value the search space can take."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lightning_modules.config import RunConfig
from lightning_modules.models.registry import has_arithmetic_table
from search.errors import ConfigError
from search.experiment.dotted import config_from_params, get_dotted
from search.experiment.validation_messages import describe_validation_error

if TYPE_CHECKING:
    from search.experiment.spec import ExperimentSpec


def refuse_unreadable_values(tree: Any, source: str, where: str = "") -> None:
    """Non-finite numbers (`.inf`, `nan`, `1e999`) and NUL characters, anywhere in the tree: no
    setting means them, and pydantic would accept them where a field takes any value."""
    if isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(f"{source}: {where or 'value'} must be a finite number, but got {tree}.")
    if isinstance(tree, str) and "\x00" in tree:
        raise ConfigError(f"{source}: {where or 'value'} contains a NUL character; remove it.")
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        dotted = f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and "\x00" in key:
            raise ConfigError(f"{source}: a key under {where or 'the top level'} contains a NUL character.")
        refuse_unreadable_values(value, source, dotted)


def check_cost_aware(spec: ExperimentSpec, source: str) -> None:
    if not spec.search.sampler.cost_aware:
        return
    if "model.name" in spec.search.space:
        problem = "model.name is searched"
    elif not has_arithmetic_table(spec.model):
        problem = f"model.name is {spec.model.name!r}"
    else:
        return
    raise ConfigError(
        f"{source}: search.sampler.cost_aware predicts a trial's cost from a convnet's layers, but "
        f"{problem}; use model.name: convnet or set cost_aware: false."
    )


def check_space_values(spec: ExperimentSpec, source: str) -> None:
    """Every value the space can take must make a valid config; checked before any trial."""
    base = spec.run_dict()
    for key, param in spec.search.space.items():
        if key.split(".")[0] not in RunConfig.model_fields or key.startswith(("search.", "name")):
            raise ConfigError(
                f"{source}: search.space key {key!r} must start with one of "
                f"{', '.join(sorted(RunConfig.model_fields))}."
            )
        for condition in param.when or {}:
            if condition not in spec.search.space and get_dotted(base, condition) is None:
                raise ConfigError(
                    f"{source}: search.space[{key!r}].when names {condition!r}, which is no key."
                )
        for value in param.candidates():
            try:
                config_from_params(spec, {key: value})
            except ValidationError as error:
                raise ConfigError(
                    f"{source}: search.space[{key!r}] can take {value!r}, which gives an invalid config: "
                    f"{describe_validation_error(error, type(spec))}"
                ) from None
