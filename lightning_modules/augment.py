"""Albumentations pipelines built from the `augment:` list of an experiment file.

Each entry names one transform and its arguments, `{HorizontalFlip: {p: 0.5}}`; container
transforms (`OneOf`, `SomeOf`, `Sequential`, ...) take their `transforms` as a list of entries of
the same form. Images stay uint8: normalization happens on the device inside the LightningModule,
so `Normalize`, `ToFloat` and `ToTensorV2` are refused.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pydantic

if TYPE_CHECKING:
    import albumentations as A

__all__ = ["AugmentationError", "available_transforms", "build_augmentation", "validate_augmentation"]

AugmentEntries = Sequence[Mapping[str, Mapping[str, Any] | None]]

_NORMALIZES = "convtune keeps images uint8 and normalizes them on the device itself; remove this entry."
_TENSORS = "convtune converts images to tensors and normalizes them on the device itself; remove this entry."
FORBIDDEN: dict[str, str] = {
    "Normalize": f"Normalize is not allowed in augment: {_NORMALIZES}",
    "ToFloat": f"ToFloat is not allowed in augment: {_NORMALIZES}",
    "ToTensorV2": f"ToTensorV2 is not allowed in augment: {_TENSORS}",
    "ToTensor": f"ToTensor is not allowed in augment: {_TENSORS}",
}
# albumentations reads a number for these arguments of Affine as one fixed value, not as a range
# around zero as Rotate(limit=10) or ShiftScaleRotate(shift_limit=0.1) do: Affine(translate_percent=0.08)
# moves every transformed image by the same +8% right and down. Such a number is refused.
_FIXED_WHEN_A_NUMBER: dict[str, dict[str, float]] = {
    "Affine": {"translate_percent": 0, "translate_px": 0, "rotate": 0, "shear": 0, "scale": 1}
}
_ABSTRACT = frozenset(
    {"BasicTransform", "DualTransform", "ImageOnlyTransform", "Transform3D", "BaseCompose", "ReplayCompose"}
)


class AugmentationError(ValueError):
    """An `augment:` entry that cannot be built; the message is one line naming the entry and the fix."""


@cache
def albumentations() -> ModuleType:
    """The albumentations module, imported on first use.

    Imported here: saves ~2 s at start-up (albumentations and OpenCV) for commands and experiments
    that do not augment (`convtune check` of a file without `augment:`, `status`, `predict`).
    """
    import albumentations as A
    import cv2

    # OpenCV's thread pool does not survive fork: DataLoader workers forked after OpenCV ran in this
    # process can hang. Per-image work on small images gains nothing from those threads anyway.
    cv2.setNumThreads(0)
    return A


@cache
def available_transforms() -> dict[str, type]:
    """Every albumentations transform or container usable in `augment:`, by name."""
    A = albumentations()
    from albumentations.core.transforms_interface import BasicTransform  # lazy, as albumentations()

    found: dict[str, type] = {}
    for name in dir(A):
        obj = getattr(A, name)
        is_transform = inspect.isclass(obj) and issubclass(obj, (BasicTransform, A.BaseCompose))
        if is_transform and name not in _ABSTRACT and not name.startswith("_"):
            found[name] = obj
    return found


def build_augmentation(entries: AugmentEntries, seed: int | None = None) -> A.Compose | None:
    """An `A.Compose` of the entries (None for an empty list); raises AugmentationError on any problem."""
    if not entries:
        return None
    problems: list[str] = []
    transforms = _build_list(entries, "augment", problems)
    if problems:
        raise AugmentationError(" ".join(problems))
    return albumentations().Compose(transforms, seed=seed)


def validate_augmentation(entries: AugmentEntries) -> list[str]:
    """Every problem of the entries (one line each), or an empty list when they all build."""
    problems: list[str] = []
    if entries:
        _build_list(entries, "augment", problems)
    return problems


def _build_list(entries: Any, where: str, problems: list[str]) -> list[Any]:
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        problems.append(
            f"{where} must be a list of {{TransformName: {{args}}}} entries, but got {entries!r}."
        )
        return []
    built = [_build_entry(entry, f"{where}[{index}]", problems) for index, entry in enumerate(entries)]
    return [transform for transform in built if transform is not None]


def _build_entry(entry: Any, where: str, problems: list[str]) -> Any | None:
    if not isinstance(entry, Mapping) or len(entry) != 1:
        problems.append(
            f"{where} must name exactly one transform, like {{HorizontalFlip: {{p: 0.5}}}}, got {entry!r}."
        )
        return None
    name, args = next(iter(entry.items()))
    cls = _resolve(name, where, problems)
    if cls is None:
        return None
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        problems.append(f"{where}: the arguments of {name} must be a mapping like {{p: 0.5}}, got {args!r}.")
        return None
    if not _check_arguments(cls, name, args, where, problems) or not _ranges_not_numbers(
        name, args, where, problems
    ):
        return None
    return _instantiate(cls, name, dict(args), where, problems)


def _resolve(name: Any, where: str, problems: list[str]) -> type | None:
    if not isinstance(name, str):
        problems.append(f"{where}: the transform name must be text, like HorizontalFlip, got {name!r}.")
        return None
    if name in FORBIDDEN:
        problems.append(f"{where}: {FORBIDDEN[name]}")
        return None
    known = available_transforms()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:
        close = [k for k in known if k.lower() == name.lower() or name.lower() in k.lower()][:3]
    hint = f"did you mean {', '.join(close)}?" if close else "see the albumentations transform list."
    problems.append(f"{where}: unknown albumentations transform {name!r}; {hint}")
    return None


@cache
def _parameters(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(accepted argument names, required argument names) of a transform class."""
    params = inspect.signature(cls.__init__).parameters.values()
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p for p in params if p.name != "self" and p.kind in plain]
    required = tuple(p.name for p in named if p.default is inspect.Parameter.empty)
    return tuple(p.name for p in named), required


def _check_arguments(cls: type, name: str, args: Mapping[str, Any], where: str, problems: list[str]) -> bool:
    accepted, required = _parameters(cls)
    unknown = [key for key in args if key not in accepted]
    for key in unknown:
        close = difflib.get_close_matches(str(key), accepted, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(
            f"{where}: {name} has no argument {key!r}; {hint}it accepts: {', '.join(accepted) or 'nothing'}."
        )
    missing = [key for key in required if key not in args]
    if missing:
        problems.append(f"{where}: {name} needs {', '.join(missing)}; add them to its arguments.")
    return not unknown and not missing


def _ranges_not_numbers(name: str, args: Mapping[str, Any], where: str, problems: list[str]) -> bool:
    """False (and a problem) for an argument albumentations would read as one fixed value by surprise."""
    fixed = _FIXED_WHEN_A_NUMBER.get(name, {})
    for key, neutral in fixed.items():
        values = args.get(key)
        numbers = values.values() if isinstance(values, Mapping) else [values]
        number = next((v for v in numbers if _is_number(v) and v != neutral), None)
        if number is None:
            continue
        low, high = (neutral - abs(number - neutral), neutral + abs(number - neutral))
        problems.append(
            f"{where}: {name} reads {key}={values!r} as one fixed value (every transformed image gets "
            f"{number}), not a random one; for a random value write {key}: [{low:g}, {high:g}] "
            f"(or [{number:g}, {number:g}] to keep it fixed)."
        )
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _instantiate(cls: type, name: str, args: dict[str, Any], where: str, problems: list[str]) -> Any | None:
    if issubclass(cls, albumentations().BaseCompose):
        args["transforms"] = _build_list(args["transforms"], f"{where}.{name}.transforms", problems)
    try:
        return cls(**args)
    except Exception as error:  # albumentations raises ValueError/TypeError for bad arguments
        problems.append(f"{where}: {name} rejected its arguments: {_one_line(error)}")
        return None


def _one_line(error: BaseException) -> str:
    cause = error if isinstance(error, pydantic.ValidationError) else error.__cause__
    if isinstance(cause, pydantic.ValidationError):
        return _summarize_validation(cause)
    return " ".join(str(error).split()) or type(error).__name__


def _summarize_validation(error: pydantic.ValidationError) -> str:
    by_field: dict[str, list[str]] = {}
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "arguments"
        if item["type"] == "missing":
            field, message = f"{field} (missing)", "give a value"
        else:
            field, message = f"{field}={item.get('input')!r}", item["msg"].removeprefix("Value error, ")
        if message not in by_field.setdefault(field, []):
            by_field[field].append(message)
    return "; ".join(f"{field}: {' | '.join(messages[:3])}" for field, messages in by_field.items()) + "."
