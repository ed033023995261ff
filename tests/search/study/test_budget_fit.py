"""How much of the search space fits the experiment's budgets, said by check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from search.cli.main import main
from tests.conftest import tiny_experiment, write_experiment

WIDTHS = {"model.channels.0": {"choice": [4, 16]}, "model.channels.1": {"choice": [8, 32]}}


def test_check_reports_the_share_that_fits_and_refuses_a_space_where_nothing_fits(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_experiment()
    raw["search"] |= {
        "space": WIDTHS,
        "constraints": {"cost/params": "<= 5000", "cost/latency_ms": "<= 1000"},
    }
    experiment = write_experiment(workdir, raw)
    assert main(["check", str(experiment)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # 3 of the 4 width pairs fit: about 75% of 256 random samples
    assert re.search(
        r"about 7\d% of the space fits the budget \(cost/params <= 5,000, cost/latency_ms <= 1,000\)", out
    )
    assert "by latency (measured on this CPU)" in out
    assert main(["check", str(experiment), "--set", "search.constraints={cost/params: '<= 500'}"]) == 2
    err = capsys.readouterr().err
    assert "none of 256 sampled configs fits cost/params <= 500 (the smallest cost/params is 678)" in err
