"""`search.reproduce.reproduce`: `convtune reproduce` without a study to reproduce."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.main import main
from tests.conftest import tiny_experiment, write_experiment


def test_reproduce_without_a_study_is_a_config_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["reproduce", str(path)]) == 2
    assert "no study named 'tiny'" in capsys.readouterr().err
