"""Which test-time augmentations a config may name, checked without importing torch.

`lightning_modules.tta` runs them; this module only validates the entries (the experiment file is
validated by `convtune status` and `check`, which must not pay for torch's import). An entry is a
flip (`HorizontalFlip`, `VerticalFlip`, `Transpose`) or a fixed shift written as albumentations
writes one, `{Affine: {translate_px: {x: 1, y: 0}}}` (whole pixels, uncovered pixels black, as
albumentations' constant border fills them). Each is kept as one canonical string, e.g.
`Affine(translate_px={x: 1, y: 0})`, so a model's description and its MLflow tag name it as a config
would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

FLIPS = ("HorizontalFlip", "VerticalFlip", "Transpose")  # tensor ops in lightning_modules.tta
SQUARE_ONLY = ("Transpose",)
_SHIFT = re.compile(r"Affine\(translate_px=\{x: (-?\d+), y: (-?\d+)\}\)")
_SHIFT_FORM = "{Affine: {translate_px: {x: 1, y: 0}}} (a fixed shift in whole pixels)"


def shift_name(dx: int, dy: int) -> str:
    """The canonical entry of a shift by `dx` pixels right and `dy` down."""
    return f"Affine(translate_px={{x: {dx}, y: {dy}}})"


def shift_of(name: str) -> tuple[int, int] | None:
    """(dx, dy) of a canonical shift entry, None for a flip."""
    match = _SHIFT.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def tta_name(entry: Any) -> str:
    """`HorizontalFlip`, `{HorizontalFlip: null}`, `{HorizontalFlip: {}}`, `{HorizontalFlip: {p: 1}}`,
    `{Affine: {translate_px: {x: 1, y: 0}}}` or a canonical string to its canonical string; a
    `ValueError` that says why for anything else."""
    if isinstance(entry, str):
        if shift_of(entry) is not None:
            return _checked_shift(*shift_of(entry))  # type: ignore[misc]
        name, options = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, options = next(iter(entry.items()))
        options = options or {}
    else:
        raise ValueError(f"each tta entry names one transform, like HorizontalFlip, but got {entry!r}.")
    if not isinstance(options, dict) or options.get("p", 1) != 1:
        raise ValueError(f"tta applies {name} to every image: it takes p: 1 or no p, but got {options!r}.")
    if name == "Affine" and options:
        return _shift_entry(options)
    if set(options) - {"p"}:
        raise ValueError(
            f"tta applies {name} to every image and takes no options but p: 1, but got {options!r}."
        )
    if name not in FLIPS:
        why = " (it is not deterministic: albumentations draws its parameters at random)"
        raise ValueError(
            f"tta takes deterministic transforms that run inside the exported model "
            f"({', '.join(FLIPS)}, or {_SHIFT_FORM}), but got {name!r}{why if is_random(name) else ''}."
        )
    return name


def _shift_entry(options: dict[str, Any]) -> str:
    shift = options.get("translate_px")
    extra = sorted(set(options) - {"p", "translate_px"})
    if extra or not isinstance(shift, dict) or not shift or set(shift) - {"x", "y"}:
        raise ValueError(
            f"tta Affine is a fixed shift, written {_SHIFT_FORM}, but got {options!r}"
            + (f" (remove {', '.join(extra)})." if extra else ".")
        )
    steps = [shift.get(axis, 0) for axis in ("x", "y")]
    if not all(isinstance(step, int) and not isinstance(step, bool) for step in steps):
        raise ValueError(
            f"tta Affine shifts by whole pixels, one number per axis (a range would be drawn at random), "
            f"but got translate_px={shift!r}."
        )
    return _checked_shift(*steps)


def _checked_shift(dx: int, dy: int) -> str:
    if dx == 0 and dy == 0:
        raise ValueError("tta Affine shifts by 0 pixels: the image itself is always averaged in; remove it.")
    return shift_name(dx, dy)


def is_random(name: str) -> bool:
    """Whether albumentations' transform `name`, at its defaults and p=1, gives one image two
    different results under two seeds."""
    import albumentations  # lazy: ~2 s, only to say why a refused transform is refused
    import numpy as np

    transform = getattr(albumentations, name, None)
    if not isinstance(transform, type):
        return False
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    try:
        outputs = [
            albumentations.Compose([transform(p=1.0)], seed=seed)(image=image)["image"] for seed in (1, 2)
        ]
    except Exception:  # a transform that needs arguments or other inputs: not known to be random
        return False
    return not np.array_equal(outputs[0], outputs[1])


def check_tta(entries: Sequence[Any]) -> list[str]:
    """The transforms' canonical names, each once, in order."""
    names = [tta_name(entry) for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"tta lists {', '.join(repeated)} more than once; list each transform once.")
    return names


def check_image_size(transforms: Sequence[str], image_size: tuple[int, int]) -> None:
    """Transpose keeps the shape only of square images; a shift must leave some of the image."""
    height, width = image_size
    for name in transforms:
        if name in SQUARE_ONLY and height != width:
            raise ValueError(f"tta {name} needs square images, but they are {height}x{width}.")
        shift = shift_of(name)
        if shift is not None and (abs(shift[0]) >= width or abs(shift[1]) >= height):
            raise ValueError(f"tta {name} shifts the whole {height}x{width} image out of view; shift less.")
