"""Architectures that cannot work, found from shapes before any training."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from lightning_modules.config import RunConfig
from lightning_modules.machine import available_memory
from lightning_modules.models.registry import has_arithmetic_table
from lightning_modules.models.shapes import InfeasibleArchitecture, architecture_table
from search.errors import ConfigError
from search.experiment.dotted import config_from_params
from search.experiment.spec import ExperimentSpec

SHAPE_KEYS = ("channels", "kernel_size", "stride", "padding", "pool", "pool_size", "convs_per_block")
MAX_COMBINATIONS = 2048
TRAINING_BYTES_PER_PARAM = 16


def infeasibility(config: RunConfig, in_channels: int, image_size: tuple[int, int]) -> str | None:
    """Why this config's network cannot run on these inputs, or None when it can."""
    if not has_arithmetic_table(config.model):
        return None
    size = config.data.input_size(image_size)
    try:
        rows = architecture_table(config.model, in_channels, size, num_classes=1)
    except InfeasibleArchitecture as error:
        return str(error)
    return _too_large(sum(row.params for row in rows))


def _too_large(params: int) -> str | None:
    """Why a network of `params` parameters cannot train in the memory free now (weights, gradients and
    two optimizer moments at 4 bytes each), or None."""
    needed, free = params * TRAINING_BYTES_PER_PARAM, available_memory()
    if free is None or needed <= free:
        return None
    return (
        f"the network has {_count(params)} parameters, about {_gib(needed)} GiB to train, "
        f"but {free / 2**30:.1f} GiB of memory are free; use fewer channels or hidden units."
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f}" if size < 10**24 else _count(size // 2**30)


def _count(number: int) -> str:
    """`1,234,567`; a number too long to read (a typo of many zeros in a width) as its power of ten."""
    return f"{number:,}" if number < 10**15 else f"~10^{len(str(number)) - 1}"


@dataclass(frozen=True)
class SpaceFeasibility:
    checked: int
    infeasible: int
    first_reason: str | None


def _shape_keys(spec: ExperimentSpec) -> list[str]:
    return [
        key
        for key in spec.search.space
        if key == "data.image_size" or (key.startswith("model.") and key.split(".")[1] in SHAPE_KEYS)
    ]


def check_space(spec: ExperimentSpec, in_channels: int, image_size: tuple[int, int]) -> SpaceFeasibility:
    """Checks the combinations of shape-changing choices; raises `ConfigError` when none can work."""
    keys = _shape_keys(spec)
    combos: list[tuple[Any, ...]] = list(
        itertools.islice(
            itertools.product(*(spec.search.space[k].candidates() for k in keys)), MAX_COMBINATIONS * 4
        )
    )
    if len(combos) > MAX_COMBINATIONS:
        combos = random.Random(spec.seed).sample(combos, MAX_COMBINATIONS)
    infeasible, first_reason = 0, None
    for combo in combos:
        try:
            config = config_from_params(spec, dict(zip(keys, combo, strict=False)))
        except ValueError:
            continue
        reason = infeasibility(config, in_channels, image_size)
        if reason is not None:
            infeasible += 1
            first_reason = first_reason or reason
    if combos and infeasible == len(combos):
        raise ConfigError(
            f"no architecture in the search space fits the {image_size[0]}x{image_size[1]} "
            f"inputs: {first_reason}"
        )
    return SpaceFeasibility(len(combos), infeasible, first_reason)
