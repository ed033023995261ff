"""Dotted keys (`optim.lr`, `model.kernel_size.1`): `--set` values, nested trees, and the one way
from an experiment's base config and a trial's params to the `RunConfig` it trains."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lightning_modules.config import RunConfig
from search.errors import ConfigError
from search.experiment.names import shown
from search.experiment.yaml_loading import YamlSyntaxError, load_yaml

if TYPE_CHECKING:
    from search.experiment.spec import ExperimentSpec

MAX_EXPANDED_INDEX = 1024  # `--set a.b.N=v` on a value that is no list yet makes a list of N+1 entries
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_INT = re.compile(r"^[-+]?\d+$")


def config_from_params(spec: ExperimentSpec, params: Mapping[str, Any]) -> RunConfig:
    """The experiment's base config with `params` (dotted keys, set in their order), validated: what a
    trial with these params trains. Raises pydantic's `ValidationError` or `ConfigError`."""
    tree = spec.run_dict()
    for key, value in params.items():
        set_dotted(tree, key, value)
    return RunConfig.model_validate(tree)


def overlaps(key: str, other: str) -> bool:
    """Whether setting one dotted key sets the other too: the same key, or one inside the other
    (`model.channels` holds `model.channels.0`)."""
    return key == other or key.startswith(other + ".") or other.startswith(key + ".")


def set_by(keys: Iterable[str], settings: Iterable[str]) -> list[str]:
    """Those of `keys` that one of `settings` (dotted keys) sets, in their order."""
    chosen = list(settings)
    return [key for key in keys if any(overlaps(key, setting) for setting in chosen)]


def coerce_numbers(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as text; experiment files mean a number."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip()
        try:
            return int(text) if _INT.match(text) else float(text)
        except ValueError:  # more digits than Python converts; validation names the field
            return value
    if isinstance(value, list):
        return [coerce_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: coerce_numbers(v) for k, v in value.items()}
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from `--set`; the value is read as YAML (numbers, lists, true/false)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, like --set optim.lr=0.01, but got {text!r}.")
    try:
        value = load_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    except YamlSyntaxError:
        value = raw
    return key.strip(), coerce_numbers(value)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Sets `a.b.0.c` in nested dicts/lists, expanding a per-block scalar to one entry per block."""
    parts = key.split(".")
    node: Any = tree
    for index, part in enumerate(parts[:-1]):
        node = _step_into(node, part, parts[index + 1], key)
    last = parts[-1]
    if isinstance(node, list):
        position = _list_index(node, last, key)
        node[position] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        parent = ".".join(parts[:-1])
        raise ConfigError(f"{key}: {parent} is {shown(node)}, not a mapping or list; set {parent} itself.")


def _step_into(node: Any, part: str, next_part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, key)]
    if not isinstance(node, dict):
        raise ConfigError(f"{key}: {part!r} is inside a value that is not a mapping.")
    child = node.get(part)
    if next_part.isdigit() and not isinstance(child, list):
        if int(next_part) >= MAX_EXPANDED_INDEX:
            raise ConfigError(f"{key}: index {next_part} is too large; per-block lists are short.")
        channels = node.get("channels")
        depth = len(channels) if isinstance(channels, list) and channels else int(next_part) + 1
        child = [child] * depth
        node[part] = child
    elif child is None:
        child = {}
        node[part] = child
    return child


def _list_index(node: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{key}: index {part} is out of range for a list of {len(node)} entries.")
    return int(part)


def get_dotted(tree: Mapping[str, Any], key: str) -> Any:
    """The value at `a.b.0.c`, or None when there is none."""
    node: Any = tree
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted names for every leaf of a tree (lists are leaves): the inverse of `set_dotted`."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten_config(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}
