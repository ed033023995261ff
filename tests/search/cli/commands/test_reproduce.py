"""`convtune reproduce`'s own checks and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli


def test_reproduce_refuses_a_top_k_out_of_range(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["reproduce", str(experiment), "--top-k", "0"], capsys)
    assert result.code == 2
    assert "--top-k must be in [1, 20], but got 0." in result.one_line_error()
