"""`convtune explain`: pictures and the architecture of one model, and two side by side with --compare."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.main import main


def test_compare_explains_both_and_writes_the_comparison(
    saved_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(saved_model)
    assert main(["explain", model, "digit.png", "--out", "out", "--compare", model]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "prediction:" in printed and "side by side" in printed
    assert (Path("out") / "architecture.md").is_file() and (Path("out") / "comparison.md").is_file()
    assert (Path("out") / "compare" / "gradcam.png").is_file()


def test_a_missing_model_is_one_line_before_any_folder_is_made(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "missing.pt", "digit.png"]) == 1
    assert "model missing.pt not found" in capsys.readouterr().err
    assert not (workdir / "explain-digit").exists()
