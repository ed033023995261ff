"""Which test-time augmentations a config may name, checked without importing torch.

`lightning_modules.tta` runs them; this module only validates the names (the experiment file is
validated by `convtune status` and `check`, which must not pay for torch's import).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TRANSFORMS = ("HorizontalFlip", "VerticalFlip", "Transpose")  # tensor ops in lightning_modules.tta
SQUARE_ONLY = ("Transpose",)


def tta_name(entry: Any) -> str:
    """`HorizontalFlip`, `{HorizontalFlip: null}`, `{HorizontalFlip: {}}` or `{HorizontalFlip: {p: 1}}`
    to its name; a `ValueError` that says why for anything else."""
    if isinstance(entry, str):
        name, options = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, options = next(iter(entry.items()))
        options = options or {}
    else:
        raise ValueError(f"each tta entry names one transform, like HorizontalFlip, but got {entry!r}.")
    if not isinstance(options, dict) or set(options) - {"p"} or options.get("p", 1) != 1:
        raise ValueError(
            f"tta applies {name} to every image and takes no options but p: 1, but got {options!r}."
        )
    if name not in TRANSFORMS:
        why = " (it is not deterministic: albumentations draws its parameters at random)"
        raise ValueError(
            f"tta takes deterministic transforms that run inside the exported model "
            f"({', '.join(TRANSFORMS)}), but got {name!r}{why if is_random(name) else ''}."
        )
    return name


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
    """The transforms' names, each once, in order."""
    names = [tta_name(entry) for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"tta lists {', '.join(repeated)} more than once; list each transform once.")
    return names


def check_image_size(transforms: Sequence[str], image_size: tuple[int, int]) -> None:
    """Transpose keeps the shape only of square images."""
    for name in transforms:
        if name in SQUARE_ONLY and image_size[0] != image_size[1]:
            raise ValueError(f"tta {name} needs square images, but they are {image_size[0]}x{image_size[1]}.")
