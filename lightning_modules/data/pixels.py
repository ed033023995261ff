"""Whole uint8 image tensors at once: resized, and their per-channel statistics, in bounded chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_CHUNK = 4096  # images per chunk for resizing and statistics (bounds the float working memory) ...
_CHUNK_BYTES = 2**28  # ... and at most this many bytes of float32 per chunk, for large images


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) resized to `size` (H, W) with antialiased bilinear interpolation, in chunks."""
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8, device=images.device)
    step = _chunk(images.shape[1] * max(size[0] * size[1], images.shape[2] * images.shape[3]))
    for start in range(0, images.shape[0], step):
        chunk = images[start : start + step].float()
        resized = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[start : start + step] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _chunk(values_per_image: int) -> int:
    """Images per chunk: `_CHUNK`, fewer when their float32 copies would pass `_CHUNK_BYTES`."""
    return max(1, min(_CHUNK, _CHUNK_BYTES // (4 * max(1, values_per_image))))


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 (N, C, H, W) images in the [0, 1] scale."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    step = _chunk(images[0].numel()) if images.shape[0] else _CHUNK
    for start in range(0, images.shape[0], step):
        chunk = images[start : start + step].float()
        total += chunk.sum(dim=(0, 2, 3), dtype=torch.float64)
        squares += chunk.square_().sum(dim=(0, 2, 3), dtype=torch.float64)
    count = images.numel() / channels
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return (mean / 255).tolist(), (std / 255).clamp_min(1e-6).tolist()
