"""Running `convtune` in-process and reading what it printed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from search.cli.main import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.strip().splitlines() if line.strip()]

    def one_line_error(self) -> str:
        """The single stderr line of a failed command (asserts there is exactly one, no traceback)."""
        assert "Traceback" not in self.err and "Traceback" not in self.out, self.err
        assert len(self.err_lines) == 1, self.err
        return self.err_lines[0]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
