"""`convtune tune`'s own checks: each refusal is one line with its exit status, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.cli.main import main
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-5"])
def test_timeout_must_be_a_positive_finite_number(capsys: pytest.CaptureFixture[str], timeout: str) -> None:
    assert main(["tune", "missing.yaml", "--timeout", timeout]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--timeout must be a positive number" in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without GPUs")
def test_cli_devices_on_a_machine_without_gpus_is_exit_2_and_writes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["tune", str(path), "--devices", "0,1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "0 visible GPUs" in err and "--devices cpu --workers N" in err
    assert not (workdir / ".convtune").exists() and not (workdir / "mlflow.db").exists()


def test_unreachable_storage_is_one_line_exit_1_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    code = main(["tune", str(path), "--quiet", "--storage", "postgresql://postgres@127.0.0.1:1/nothing"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "study storage postgresql://" in err and "unreachable" in err
    assert not (workdir / ".convtune").exists() and not (workdir / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budget", "abc"], "--budget takes a duration like 90s, 45m, 1h30m or a number of seconds"),
        (["--budget", "10x"], "--budget takes a duration"),
        (["--budget", "0"], "--budget must be positive, but got '0'"),
        (["--budget=-5m"], "--budget takes a duration"),
        (["--budget=-60"], "--budget must be positive"),
        (["--budget", "45m", "--timeout", "60"], "give --budget or --timeout, not both"),
    ],
)
def test_a_bad_budget_is_one_line_and_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["tune", str(experiment), *flags], capsys)
    assert result.code == 2
    assert message in result.one_line_error()
    assert not (workdir / ".convtune" / "optuna.journal").exists()  # refused before anything ran
