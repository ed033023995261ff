"""`convtune reproduce`'s own checks and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.reproduce_display import cost_line, ensemble_line
from search.reproduce.selection import EnsembleChoice
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli


def test_reproduce_refuses_a_top_k_out_of_range(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["reproduce", str(experiment), "--top-k", "0"], capsys)
    assert result.code == 2
    assert "--top-k must be in [1, 20], but got 0." in result.one_line_error()


@pytest.mark.parametrize("extra", [[], ["--trial", "0"], ["--top-k", "1"]])
def test_reproduce_refuses_workers_without_an_ensemble(
    workdir: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["reproduce", str(experiment), "--workers", "2", *extra], capsys)
    assert result.code == 2
    assert result.one_line_error() == (
        "convtune reproduce: error: --workers 2 retrains ensemble members at once, "
        "but this reproduces one model; give it with --top-k K (K >= 2)."
    )


def test_the_reproduced_networks_cost_on_one_line() -> None:
    costs = {
        v.COST_PARAMS: 12345.0,
        v.COST_MACS: 1234567.0,
        v.COST_SIZE_BYTES: 49380.0,
        v.COST_LATENCY_MS: 0.2134,
        v.COST_LATENCY_MS_BATCH: 0.0412,
    }
    assert cost_line(costs) == (
        "params 12,345, multiply-adds 1,234,567, 49,380 bytes, 0.213 ms per image at batch 1, "
        "0.0412 at batch 64 (float32, CPU)"
    )


@pytest.mark.parametrize(
    "flag", [["--select-by", "nll"], ["--greedy-margin", "1.0"], ["--distinct", "architecture"]]
)
def test_reproduce_refuses_ensemble_flags_without_an_ensemble(
    workdir: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["reproduce", str(experiment), *flag], capsys)
    assert result.code == 2
    assert result.one_line_error() == (
        f"convtune reproduce: error: {' '.join(flag)} chooses an ensemble of several members, "
        "but this reproduces one model; give it with --top-k K (K >= 2)."
    )


def test_reproduce_refuses_a_negative_greedy_margin(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["reproduce", str(experiment), "--top-k", "2", "--greedy-margin", "-1"], capsys)
    assert result.code == 2
    assert "--greedy-margin must be at least 0, but got --greedy-margin -1.0." in result.one_line_error()


def _choice(criterion: str, margin: float = 0.0) -> EnsembleChoice:
    return EnsembleChoice(
        "average",
        [0.5, 0.5],
        0.9518,
        0.1612,
        {"average": 0.9518, "greedy": 0.9527, "best single": 0.9527},
        {"average": 0.1612, "greedy": 0.1744, "best single": 0.1744},
        criterion,
        margin,
        0.54,
    )


def test_the_ensemble_line_names_its_criterion_and_with_nll_both_scores() -> None:
    assert ensemble_line(_choice("accuracy"), 2) == (
        "ensemble chosen on the validation split by accuracy: average (2 of 2 members); validation "
        "accuracy 0.9518 (plain average 0.9518, greedy 0.9527, best single 0.9527)"
    )
    assert ensemble_line(_choice("accuracy", 2.0), 2).startswith(
        "ensemble chosen on the validation split by accuracy (greedy must lead by 2 SE; it led by 0.5): "
        "average (2 of 2 members); "
    )
    assert ensemble_line(_choice("nll"), 2) == (
        "ensemble chosen on the validation split by nll: average (2 of 2 members); validation NLL "
        "0.1612 (plain average 0.1612, greedy 0.1744, best single 0.1744); validation accuracy 0.9518 "
        "(plain average 0.9518, greedy 0.9527, best single 0.9527)"
    )
