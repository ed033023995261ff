"""Architectures that cannot train here are found from their shapes and sizes, before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_modules.config import RunConfig
from search.study.feasibility import infeasibility
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli


def test_a_network_too_large_for_the_memory_is_infeasible() -> None:
    config = RunConfig.model_validate({"model": {"name": "convnet", "channels": [16, 100_000_000]}})
    reason = infeasibility(config, 1, (8, 8))
    assert reason is not None and "parameters" in reason and "GiB of memory are free" in reason
    assert infeasibility(RunConfig(), 1, (8, 8)) is None


def test_a_width_of_hundreds_of_digits_is_infeasible_in_words_not_an_overflow() -> None:
    config = RunConfig.model_validate({"model": {"name": "convnet", "channels": [16, 10**300]}})
    reason = infeasibility(config, 1, (8, 8))  # found by the long fuzz run: a float division overflowed
    assert reason is not None and "~10^30" in reason and "GiB of memory are free" in reason


@pytest.mark.parametrize(
    "override",
    [
        "model.channels=[16, 100000000]",
        "model.kernel_size=1000000000000000000000000000000",
        f"model.channels=[16, {10**300}]",
    ],
)
def test_check_refuses_a_huge_network_without_building_it(
    workdir: Path, capsys: pytest.CaptureFixture[str], override: str
) -> None:
    raw = tiny_experiment(model={"name": "convnet", "channels": [8, 16], "weights": "missing.pt"})
    result = run_cli(["check", str(write_experiment(workdir, raw)), "--set", override], capsys)
    assert result.code == 2
    assert "parameters" in result.one_line_error()


def test_check_with_an_infeasible_base_but_a_feasible_space_says_so(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_experiment(model={"name": "convnet", "channels": [8, 16], "stride": 11})
    raw["search"]["space"] = {"model.stride": {"choice": [1, 11]}}
    result = run_cli(["check", str(write_experiment(workdir, raw))], capsys)
    assert result.code == 0, result.err
    assert "the base architecture cannot run" in result.out and "ok" in result.out
