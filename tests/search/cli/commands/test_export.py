"""`convtune export`: a file that runs without convtune, and one line saying what it takes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.cli.main import main


def test_torchscript_export_says_what_it_wrote(saved_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(saved_model), "--format", "torchscript", "--out", "model.ts"]) == 0
    assert capsys.readouterr().out.strip() == "wrote model.ts (torchscript, input N x 1x8x8, 10 classes)"
    scripted = torch.jit.load("model.ts")
    probabilities = scripted(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert probabilities.shape == (2, 10)


def test_a_missing_model_is_one_line_and_nothing_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "missing.pt", "--format", "onnx", "--out", "model.onnx"]) == 1
    assert "model missing.pt not found" in capsys.readouterr().err
    assert not (workdir / "model.onnx").exists()
