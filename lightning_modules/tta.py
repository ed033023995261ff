"""Test-time augmentation: a network's logits averaged over the image and deterministic transforms.

The transforms are tensor operations on (N, C, H, W) batches, named as albumentations names them
(`HorizontalFlip` flips the width axis), so that the same averaging runs in validation, in
`predict`/`evaluate` and inside exported ONNX and TorchScript models. Only transforms with no random
parameters qualify: a random one would make a prediction depend on a draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from lightning_modules.tta_config import check_tta

VIEWS: dict[str, Callable[[Tensor], Tensor]] = {
    "HorizontalFlip": lambda x: x.flip(-1),
    "VerticalFlip": lambda x: x.flip(-2),
    "Transpose": lambda x: x.transpose(-1, -2),  # square images only
}


def average_views(network: nn.Module, images: Tensor, transforms: Sequence[str]) -> Tensor:
    """The mean of `network`'s logits over `images` and each transform of them, in one batch."""
    if not transforms:
        return network(images)
    views = [images, *(VIEWS[name](images) for name in transforms)]
    logits = network(torch.cat(views))
    return logits.reshape(len(views), images.shape[0], -1).mean(dim=0)


class TTAWrapper(nn.Module):
    """`network` with test-time augmentation: averaged logits over the image and `transforms`."""

    def __init__(self, network: nn.Module, transforms: Sequence[str]) -> None:
        super().__init__()
        self.network = network
        self.transforms = check_tta(transforms)

    def forward(self, images: Tensor) -> Tensor:
        return average_views(self.network, images, self.transforms)
