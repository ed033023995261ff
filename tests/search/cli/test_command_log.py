"""`search.cli.command_log`: library warnings and logs go to the command's log file, the terminal only
with --verbose, and everything is put back afterwards."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytest

from search.cli.command_log import CommandLog


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
