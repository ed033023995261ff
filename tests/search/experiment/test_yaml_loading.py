"""Hostile YAML: alias bombs, self-references, duplicate keys, huge or broken files; one line each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.spec import load_experiment, parse_override
from search.experiment.yaml_loading import MAX_BYTES, MAX_VALUES, load_yaml, read_yaml_file
from tests.helpers.cli_helpers import run_cli


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("section", ["model", "augment", "search", "data"])
def test_alias_bomb_in_any_section_is_refused_quickly(tmp_path: Path, section: str) -> None:
    bomb = _alias_bomb().replace("\n", "\n  ")
    path = tmp_path / "bomb.yaml"
    path.write_text(f"name: bomb\n{section}:\n  {bomb}")
    assert path.stat().st_size < MAX_BYTES
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"aliases .* more than {MAX_VALUES:,} values") as caught:
        load_experiment(path)
    assert time.perf_counter() - started < 2
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_alias_bomb_in_a_set_value_is_refused() -> None:
    bomb = "{" + _alias_bomb().strip().replace("\n", ", ") + "}"
    with pytest.raises(ConfigError, match="aliases"):
        parse_override(f"model.channels={bomb}")


def test_modest_aliases_still_work(tmp_path: Path) -> None:
    text = (
        "name: anchors\nmodel: &m {name: convnet, channels: &c [8, 16]}\n"
        "search: {space: {model.channels: {choice: [*c]}}}\n"
    )
    path = tmp_path / "anchors.yaml"
    path.write_text(text)
    assert load_experiment(path).model.channels == [8, 16]


def test_a_value_that_contains_itself_is_refused() -> None:
    with pytest.raises(ConfigError, match="contains itself"):
        load_yaml("a: &a [1, *a]\n", "self.yaml")


def test_duplicate_keys_are_refused_with_both_line_numbers(tmp_path: Path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: dup\nmodel:\n  kernel_size: 3\n  channels: [8]\n  kernel_size: 5\n")
    with pytest.raises(ConfigError, match=r"key 'kernel_size' appears twice \(lines 3 and 5\)"):
        load_experiment(nested)
    top = tmp_path / "top.yaml"
    top.write_text("name: dup\ntrainer: {max_epochs: 1}\nseed: 1\ntrainer:\n  max_epochs: 2\n")
    with pytest.raises(ConfigError, match=r"key 'trainer' appears twice \(lines 2 and 4\)"):
        load_experiment(top)
    with pytest.raises(ConfigError, match="appears twice"):
        parse_override("model={kernel_size: 3, kernel_size: 5}")


def test_merge_keys_may_be_overridden_without_a_duplicate_error() -> None:
    loaded = load_yaml("base: &b {x: 1, y: 2}\nderived: {<<: *b, y: 3}\n", "merge.yaml")
    assert loaded["derived"] == {"x": 1, "y": 3}


def test_files_over_the_size_limit_and_broken_encodings_are_one_line(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: big\n" + "# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="at most 1 MB"):
        read_yaml_file(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_yaml_file(latin)


def test_deep_nesting_and_huge_integers_are_one_line() -> None:
    with pytest.raises(ConfigError, match="nested"):
        load_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    with pytest.raises(ConfigError, match=r"deep\.yaml"):
        load_yaml("seed: " + "9" * 5000 + "\n", "deep.yaml")


def test_unsafe_tags_stay_refused() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml("a: !!python/object/apply:os.system [echo hi]\n", "tag.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "name: bomb\nmodel: {channels: &c [8, 16], kernel_size: 3}\nmodel: {channels: *c}\n",
        "name: bomb\ndata: " + _alias_bomb().strip().replace("\n", ", ").join("{}") + "\n",
    ],
)
def test_check_prints_one_line_and_exits_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = workdir / "hostile.yaml"
    path.write_text(text)
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 2
    assert "hostile.yaml" in result.one_line_error()
