"""Test-time augmentation: a network's logits averaged over the image and deterministic transforms.

The transforms are tensor operations on (N, C, H, W) batches, named as albumentations names them
(`HorizontalFlip` flips the width axis; `Affine(translate_px={x: 1, y: 0})` moves the content one
pixel right and fills the uncovered column with black), so that the same averaging runs in
validation, in `predict`/`evaluate` and inside exported ONNX and TorchScript models. Only transforms
with no random parameters qualify: a random one would make a prediction depend on a draw.

The views are taken of the normalized input; `black` is the normalized value of a 0 pixel, which a
shift writes where albumentations would write 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.tta_config import check_tta, shift_of

FLIP_VIEWS: dict[str, Callable[[Tensor], Tensor]] = {
    "HorizontalFlip": lambda x: x.flip(-1),
    "VerticalFlip": lambda x: x.flip(-2),
    "Transpose": lambda x: x.transpose(-1, -2),  # square images only
}


def shift(images: Tensor, dx: int, dy: int, black: Tensor | float = 0.0) -> Tensor:
    """`images` moved `dx` pixels right and `dy` down; uncovered pixels get `black`."""
    height, width = images.shape[-2:]
    padded = F.pad(images - black, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + height, left : left + width] + black


def view(name: str, images: Tensor, black: Tensor | float = 0.0) -> Tensor:
    """`images` under the transform `name` (a canonical entry of `lightning_modules.tta_config`)."""
    moved = shift_of(name)
    return FLIP_VIEWS[name](images) if moved is None else shift(images, *moved, black)


def average_views(
    network: nn.Module, images: Tensor, transforms: Sequence[str], black: Tensor | float = 0.0
) -> Tensor:
    """The mean of `network`'s logits over `images` and each transform of them, in one batch."""
    if not transforms:
        return network(images)
    views = [images, *(view(name, images, black) for name in transforms)]
    logits = network(torch.cat(views))
    return logits.reshape(len(views), images.shape[0], -1).mean(dim=0)


class TTAWrapper(nn.Module):
    """`network` with test-time augmentation: averaged logits over the image and `transforms`."""

    def __init__(self, network: nn.Module, transforms: Sequence[str], black: Tensor | float = 0.0) -> None:
        super().__init__()
        self.network = network
        self.transforms = check_tta(transforms)
        self.register_buffer("black", torch.as_tensor(black, dtype=torch.float32).clone())

    def forward(self, images: Tensor) -> Tensor:
        return average_views(self.network, images, self.transforms, self.black)
