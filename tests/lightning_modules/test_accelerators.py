"""Which `accelerator` settings mean training on a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.accelerators import wants_cuda


@pytest.mark.parametrize("cuda", [True, False])
def test_gpu_and_cuda_always_auto_only_with_a_gpu(monkeypatch: pytest.MonkeyPatch, cuda: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert wants_cuda("gpu") and wants_cuda("cuda")
    assert not wants_cuda("cpu") and not wants_cuda("mps")
    assert wants_cuda("auto") is cuda
