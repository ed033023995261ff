"""`convtune tune` shows its own progress only: library warnings and tips go to the log file."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytest

from search.cli.command_log import CommandLog
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import start_cli

NOISE = ("Warning", "Tip", "litlogger", "GPU available", "complete trials", "Heartbeat", "many workers")


def test_tune_prints_no_third_party_warnings_and_logs_them(workdir: Path) -> None:
    raw = tiny_experiment(
        search__n_trials=1, search__artifacts=True, trainer__max_epochs=1, trainer__limit_val_batches=0.001
    )
    path = write_experiment(workdir, raw)  # no validation batch: trials fail, the plots have nothing
    process = start_cli(["tune", str(path), "--storage", "sqlite:///optuna.db"], workdir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    for noise in NOISE:
        assert noise not in out + err, f"{noise!r} reached the terminal:\n{err}"
    assert "study tiny" in err and "FAIL" in out + err
    (log,) = (workdir / ".convtune" / "logs").glob("tune-*.log")
    text = log.read_text()
    assert "Heartbeat of storage" in text and "GPU available" in text and "complete trials" in text


def test_quiet_log_routes_warnings_and_library_logs_to_the_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pytorch_lightning")  # as Lightning sets it (other tests lower it)
    with CommandLog("tune", folder=tmp_path, verbose=False) as log, warnings.catch_warnings():
        warnings.simplefilter("always")  # the test suite's settings ignore UserWarning
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        logging.getLogger("optuna.visualization").warning("There are no complete trials.")
        logging.getLogger("pytorch_lightning.utilities.rank_zero").info("GPU available: False")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    text = log.path.read_text()
    assert "a library's warning" in text and "no complete trials" in text and "GPU available" in text


def test_verbose_shows_them_on_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with CommandLog("tune", folder=tmp_path, verbose=True):
        logging.getLogger("optuna.visualization").warning("There are no complete trials.")
        print("shown", file=sys.stderr)
    assert "no complete trials" in capsys.readouterr().err


def test_the_log_file_is_created_only_when_something_is_logged(tmp_path: Path) -> None:
    with CommandLog("check", folder=tmp_path / "logs", verbose=False) as log:
        pass
    assert not log.path.exists() and not (tmp_path / "logs").exists()


def test_logging_is_restored_afterwards(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    showwarning = warnings.showwarning
    with CommandLog("tune", folder=tmp_path, verbose=False):
        assert root.handlers != handlers
    assert root.handlers == handlers and root.level == level and warnings.showwarning is showwarning
