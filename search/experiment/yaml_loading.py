"""YAML from users, read safely: bounded aliases, no duplicate keys, no self-references, one-line errors.

`yaml.safe_load` builds no objects but still lets a small file expand into billions of values
through nested aliases (`&a [*b, *b, ...]`), silently keeps the last of two equal keys, and may
nest past Python's recursion limit. `load_yaml` refuses all of these before any value is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from search.errors import ConfigError, first_line

MAX_BYTES = 1_000_000  # an experiment file is a few kB
MAX_VALUES = 100_000  # values after every alias is expanded
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlSyntaxError(ConfigError):
    """The text is not YAML (a `--set` value then stays plain text)."""


class YamlRefusedError(ConfigError):
    """The text is YAML that convtune refuses: an alias bomb, a duplicate key, too deep, too large."""


class _Refused(Exception):
    """A reason to refuse the document, with the line it concerns (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that checks the composed node graph before constructing any value."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Node, sizes: dict[int, int], active: set[int]) -> int:
    """How many values `node` stands for once aliases are expanded; memoized per node, so a bomb
    costs as many steps as it has distinct nodes, not as many as it would expand to."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in active:
        raise _Refused("a value contains itself through an alias; write it out", node.start_mark.line + 1)
    active.add(id(node))
    size = 1
    if isinstance(node, SequenceNode):
        size += sum(_expanded_size(child, sizes, active) for child in node.value)
    elif isinstance(node, MappingNode):
        size += sum(
            _expanded_size(k, sizes, active) + _expanded_size(v, sizes, active) for k, v in node.value
        )
    active.discard(id(node))
    if size > MAX_VALUES:
        raise _Refused(
            f"its aliases (*name) expand to more than {MAX_VALUES:,} values; write the values out "
            "or repeat fewer aliases",
            node.start_mark.line + 1,
        )
    sizes[id(node)] = size
    return size


def _refuse_duplicate_keys(node: MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _value in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
            continue
        line = key.start_mark.line + 1
        ident = (key.tag, key.value)
        if ident in seen:
            where = f"lines {seen[ident]} and {line}" if seen[ident] != line else f"line {line}"
            raise _Refused(f"key {key.value!r} appears twice ({where}); keep one of them")
        seen[ident] = line


def load_yaml(text: str, source: str) -> Any:
    """The document in `text`; a `ConfigError` naming `source`, the line and the fix otherwise."""
    try:
        return yaml.load(text, Loader=BoundedLoader)
    except _Refused as refused:
        where = f" at line {refused.line}" if refused.line else ""
        raise YamlRefusedError(f"{source}: refused{where}: {refused}.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = first_line(getattr(error, "problem", None) or error, None)
        raise YamlSyntaxError(f"{source}: not valid YAML{where}: {problem}.") from None
    except RecursionError:
        raise YamlRefusedError(
            f"{source}: values are nested too deeply; flatten the lists and mappings."
        ) from None
    except (ValueError, OverflowError) as error:  # e.g. an integer of more than 4300 digits
        reason = first_line(error, 120)
        raise YamlRefusedError(
            f"{source}: a value cannot be read ({reason}); use a shorter number."
        ) from None


def read_yaml_file(path: Path) -> Any:
    """The YAML document in `path`: at most `MAX_BYTES`, UTF-8, checked as `load_yaml` does."""
    if not path.is_file():
        raise ConfigError(f"experiment file {path} not found; list the ones you have with `ls experiments/`.")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"{path} is {size / 1e6:.1f} MB; experiment files are at most 1 MB: keep data out of them."
            )
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"{path} cannot be read ({error.strerror or error}); check its permissions."
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x}); save it as UTF-8."
        ) from None
    return load_yaml(text, str(path))
