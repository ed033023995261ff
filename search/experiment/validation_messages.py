"""Pydantic's validation errors as one line: where, what, and what is allowed there."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ValidationError

from lightning_modules.models.registry import FAMILIES
from search.experiment.names import shown


def describe_validation_error(error: ValidationError, root: type[BaseModel]) -> str:
    """The first problem as one line; `root` is the model that was validated (it lists allowed keys)."""
    problems = error.errors()
    first = problems[0]
    location = [part for part in first["loc"] if part not in FAMILIES]
    dotted = ".".join(str(part) for part in location)
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
    if first["type"] == "extra_forbidden":
        allowed = allowed_keys(root, first["loc"][:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {dotted!r}{hint}.{more}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "this key is required"
    got = first.get("input")
    got_text = (
        "" if first["type"] in ("missing", "value_error") or isinstance(got, dict) else f" (got {shown(got)})"
    )
    text = f"{dotted or 'experiment'}: {message}{got_text}"
    return f"{text if text.endswith('.') else text + '.'}{more}"


def allowed_keys(root: type[BaseModel], location: Iterable[int | str]) -> list[str]:
    """The field names of the config section of `root` at a pydantic error location."""
    model: type[BaseModel] | None = root
    for part in location:
        if part in FAMILIES:
            model = FAMILIES[part]
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]
