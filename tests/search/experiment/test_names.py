"""One rule for the names that become folders, files, experiment and model names; paths convtune writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.names import NAME_RULE, check_name, check_output_file, check_output_folder
from search.experiment.spec import load_experiment
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli

HOSTILE = ["../../ESCAPED", "a/b", "my study", 'say"hi', "it's", "x" * 300, "", "..", ".hidden", "a..b", "é"]


@pytest.mark.parametrize("name", ["quickstart", "fashion-convnet", "a.b_c-1", "X" * 128])
def test_names_within_the_rule_pass(name: str) -> None:
    assert check_name(name, "--study") == name


@pytest.mark.parametrize("name", [*HOSTILE, "X" * 129])
def test_names_outside_the_rule_are_one_line_stating_the_rule(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_name(name, "--study")
    message = str(caught.value)
    assert "\n" not in message and NAME_RULE in message and message.startswith("--study ")
    assert len(message) < 400  # a 300-character name is shown shortened


@pytest.mark.parametrize("name", ["../../ESCAPED", "x" * 300, "my study"])
def test_experiment_name_uses_the_same_rule(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=NAME_RULE.replace(".", r"\.").replace("(", r"\(")):
        load_experiment(write_experiment(tmp_path, tiny_experiment(name=name)))


@pytest.mark.parametrize("study", ["../../ESCAPED", "a/b", "my study", 'q"uote', "x" * 300, ""])
@pytest.mark.parametrize("command", ["tune", "status", "reproduce"])
def test_hostile_study_is_refused_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str, study: str
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    before = {p.relative_to(workdir) for p in workdir.rglob("*")}
    result = run_cli([command, str(path), "--study", study, "--storage", "journal.log"], capsys)
    assert result.code == 2
    line = result.one_line_error()
    assert "--study" in line and NAME_RULE in line
    assert {p.relative_to(workdir) for p in workdir.rglob("*")} == before
    assert not (workdir.parent / "ESCAPED").exists() and not (workdir.parent.parent / "ESCAPED").exists()


def test_output_file_must_not_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--out .* is a folder; give a file name"):
        check_output_file(tmp_path, "--out")
    target = check_output_file(tmp_path / "new" / "model.onnx", "--out")
    assert target == tmp_path / "new" / "model.onnx" and not target.parent.exists()  # nothing created yet
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .* cannot be created"):
        check_output_file(tmp_path / "file" / "model.onnx", "--out")
    with pytest.raises(ConfigError, match="--out is empty"):
        check_output_file("", "--out")


def test_output_folder_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .* is a file; give a folder"):
        check_output_folder(tmp_path / "file", "--out")
    assert check_output_folder(tmp_path / "pictures", "--out") == tmp_path / "pictures"


def test_export_to_a_folder_is_one_line_before_the_model_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["export", "models:/none@champion", "--format", "onnx", "--out", str(tmp_path)], capsys)
    assert result.code == 2
    assert "is a folder" in result.one_line_error()


def test_export_under_an_unwritable_place_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["export", "m", "--format", "onnx", "--out", "/proc/1/model.onnx"], capsys)
    assert result.code == 2
    assert "--out" in result.one_line_error()
