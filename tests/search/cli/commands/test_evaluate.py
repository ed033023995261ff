"""`convtune evaluate`: the accuracy on the test split of the model's dataset, and per class if asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.main import main
from tests.search.cli.commands.conftest import CLASSES


def test_accuracy_on_the_models_own_dataset_and_per_class(
    saved_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(saved_model), "--per-class"]) == 0
    first, *per_class = capsys.readouterr().out.strip().splitlines()
    assert first.startswith("digits test split: accuracy 0.") and first.endswith(" images)")
    assert [line.split("\t")[0].strip() for line in per_class] == CLASSES


def test_an_unknown_dataset_is_a_config_error(saved_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(saved_model), "--dataset", "nope"]) == 2
    assert "--dataset must be one of" in capsys.readouterr().err
