"""What a Trainer's `accelerator` setting asks for."""

from __future__ import annotations

import torch


def wants_cuda(accelerator: str) -> bool:
    """Whether `accelerator` (`cpu`, `gpu`, `cuda`, `mps`, `auto`) means training on a CUDA GPU:
    named outright, or `auto` with one visible."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
