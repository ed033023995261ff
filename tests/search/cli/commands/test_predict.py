"""`convtune predict`: one line per image with its most likely classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.main import main
from tests.search.cli.commands.conftest import CLASSES


def test_one_line_per_image_with_the_top_classes(
    saved_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(saved_model), "digit.png", "digit.png", "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    path, guesses = lines[0].split("\t", 1)
    assert path == "digit.png"
    pairs = [(name, float(p)) for name, p in (guess.split("\t") for guess in guesses.split("  "))]
    assert len(pairs) == 3 and all(name in CLASSES for name, _ in pairs)
    probabilities = [p for _, p in pairs]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-4


def test_more_classes_than_the_model_has_are_all_of_them(
    saved_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(saved_model), "digit.png", "--top", "50"]) == 0
    guesses = capsys.readouterr().out.strip().split("\t", 1)[1].split("  ")
    assert sorted(guess.split("\t")[0] for guess in guesses) == CLASSES


def test_top_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "model.pt", "digit.png", "--top", "0"]) == 2
    assert "--top must be at least 1, but got 0." in capsys.readouterr().err
