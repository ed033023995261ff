"""`search.cli.main`: the command line's own contract: usage and config errors are one line with exit
status 2, and an unexpected error names its type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from search.cli.main import COMMANDS, main
from tests.conftest import REPO, tiny_experiment, write_experiment


@pytest.mark.parametrize("args", [["tune"], ["tune", "x.yaml", "--n-trials", "many"], ["nonsense"]])
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0]


def test_python_dash_m_search_cli_is_convtune_and_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "search.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert all(f"    {command}" in done.stdout for command in COMMANDS)


def test_an_unexpected_error_names_its_type_and_first_line_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(_args: object) -> int:
        raise ValueError("\n  first line\nsecond line")

    monkeypatch.chdir(tmp_path)  # the traceback's log goes to .convtune/logs/ here
    monkeypatch.setattr("search.cli.commands.predict.run", boom)
    assert main(["predict", "model.pt", "image.png"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("convtune predict: error: ValueError: first line (unexpected; the full traceback")


def test_cli_config_error_is_one_line_and_exit_status_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_experiment()
    raw["optim"]["lrr"] = 0.1
    path = write_experiment(workdir, raw)
    assert main(["tune", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown key 'optim.lrr'" in err
    assert not (workdir / ".convtune").exists()
