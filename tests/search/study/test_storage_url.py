"""`--storage` values that cannot work are one line, exit 2, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.study.storage import open_storage
from search.study.storage_url import check_storage
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("foo://bar", "unknown storage scheme 'foo://'"),
        ("http://127.0.0.1/optuna", "unknown storage scheme 'http://'"),
        ("/proc/1/x.journal", "cannot be written"),
        ("{tmp}", "is a folder"),
        ("{tmp}/file/x.journal", "cannot be written"),
        ("sqlite:///{tmp}", "is a folder"),
        ("sqlite:///{tmp}/file/x.db", "cannot be written"),
        ("", "is empty"),
    ],
)
def test_unusable_storage_is_a_config_error(tmp_path: Path, url: str, problem: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    url = url.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match=problem) as caught:
        check_storage(url)
    assert "\n" not in str(caught.value) and "--storage" in str(caught.value)
    if url:  # open_storage checks the same way (an empty URL there means the default)
        with pytest.raises(ConfigError, match=problem):
            open_storage(url)


@pytest.mark.parametrize("url", ["journal.log", "sub/dir/optuna.journal", "sqlite:///study.db"])
def test_usable_storage_passes_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    check_storage(url)
    check_storage(None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["foo://bar", "/proc/1/x.journal", "."])
@pytest.mark.parametrize("command", ["tune", "status"])
def test_cli_refuses_unusable_storage_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str, url: str
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    before = {p.relative_to(workdir) for p in workdir.rglob("*")}
    result = run_cli([command, str(path), "--storage", url], capsys)
    assert result.code == 2
    assert "--storage" in result.one_line_error()
    assert {p.relative_to(workdir) for p in workdir.rglob("*")} == before
    assert not (workdir / "foo:").exists()
