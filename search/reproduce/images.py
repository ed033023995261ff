"""Images made to fit a stored model's input: image files (`predict`, `explain`) and a dataset's
images (`evaluate` on another dataset), converted to the model's channels and resized to its size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from lightning_modules.data.pixels import resize_images
from search.errors import ConfigError, ConvtuneError, first_line


def prepare_images(paths: Sequence[str | Path], in_channels: int, image_size: tuple[int, int]) -> Tensor:
    """uint8 (N, C, H, W) from image files: converted to the model's channels (grayscale or RGB) and
    resized with bilinear filtering, the way image folders are decoded for training."""
    if in_channels not in (1, 3):
        raise ConvtuneError(f"image files can feed 1- or 3-channel models, but this one takes {in_channels}.")
    height, width = image_size
    mode = "L" if in_channels == 1 else "RGB"
    out = torch.empty((len(paths), in_channels, height, width), dtype=torch.uint8)
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                converted = image.convert(mode)
                if converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8)
        except FileNotFoundError:
            raise ConvtuneError(f"image {path} not found; check the path.") from None
        except (UnidentifiedImageError, OSError) as error:
            raise ConvtuneError(
                f"{path} is not a readable image ({first_line(error, drop_period=True)}); use PNG or JPEG."
            ) from None
        out[index] = pixels.view(height, width, in_channels).permute(2, 0, 1)
    return out


def fit_images(images: Tensor, channels: int, size: tuple[int, int]) -> Tensor:
    """uint8 (N, C, H, W) converted to `channels` (gray <-> RGB as PIL does) and resized to `size`."""
    if images.shape[1] != channels:
        if images.shape[1] == 1 and channels == 3:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] == 3 and channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(dim=1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            raise ConfigError(f"the data has {images.shape[1]} channels but the model takes {channels}.")
    if tuple(images.shape[2:]) != tuple(size):
        images = resize_images(images.contiguous(), tuple(size))
    return images.contiguous()
