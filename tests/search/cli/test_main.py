"""`search.cli.main`: the command line's own contract: usage errors are one line with exit status 2."""

from __future__ import annotations

import pytest

from search.cli.main import main


@pytest.mark.parametrize("args", [["tune"], ["tune", "x.yaml", "--n-trials", "many"], ["nonsense"]])
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0]
