"""What field validators cannot see: unreadable values, cost_aware, every value of the space."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.checks import refuse_unreadable_values
from search.experiment.spec import (
    load_experiment,
    validate_experiment,
)
from tests.conftest import tiny_experiment, write_experiment


def test_space_value_that_makes_invalid_config_is_refused(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"model.dropout": {"float": [0.0, 1.5]}}
    with pytest.raises(ConfigError, match=r"search.space\['model.dropout'\] can take 1.5"):
        load_experiment(write_experiment(tmp_path, raw))


def test_space_key_outside_config_is_refused(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"model.filters": {"choice": [3, 5]}}
    with pytest.raises(ConfigError, match=r"unknown key 'model.filters'"):
        load_experiment(write_experiment(tmp_path, raw))


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", ".NaN", "inf", "nan", "1e999", "-Infinity"])
def test_non_finite_numbers_in_a_file_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inf.yaml"
    path.write_text(f"name: inf\noptim: {{lr: {text}}}\n")
    with pytest.raises(ConfigError, match=r"optim\.lr.*finite number") as caught:
        load_experiment(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "override", ["optim.lr=inf", "optim.lr=.nan", "search.space.optim.lr.float=[0, .inf]"]
)
def test_non_finite_numbers_in_overrides_are_refused(tmp_path: Path, override: str) -> None:
    with pytest.raises(ConfigError, match="finite number"):
        load_experiment(write_experiment(tmp_path, tiny_experiment()), [override])


def test_check_refuses_inf_learning_rate_before_any_trial(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.cli_helpers import run_cli

    path = write_experiment(workdir, tiny_experiment(optim={"name": "adamw", "lr": float("inf")}))
    assert ".inf" in path.read_text()
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 2 and "finite number" in result.one_line_error()
    good = write_experiment(workdir, tiny_experiment(), "good.yaml")
    result = run_cli(["tune", str(good), "--set", "optim.lr=inf"], capsys)
    assert result.code == 2 and "finite number" in result.one_line_error()
    assert not (workdir / ".convtune").exists()  # refused before any store was opened


def test_cost_aware_needs_a_convnet() -> None:
    raw = tiny_experiment()
    raw["model"] = {"name": "resnet18", "pretrained": False}
    raw["search"]["sampler"] = {"name": "tpe", "cost_aware": True}
    with pytest.raises(
        ConfigError, match=r"cost_aware predicts .* but model.name is 'resnet18'; use model.name"
    ):
        validate_experiment(raw)


def test_nul_characters_are_refused_in_values_and_keys() -> None:
    with pytest.raises(ConfigError, match=r"e.yaml: model.pool contains a NUL character"):
        refuse_unreadable_values({"model": {"pool": "max\x00"}}, "e.yaml")
    with pytest.raises(ConfigError, match="a key under model contains a NUL character"):
        refuse_unreadable_values({"model": {"po\x00ol": "max"}}, "e.yaml")
    refuse_unreadable_values({"model": {"channels": [8, 16], "dropout": 0.5}}, "e.yaml")


def test_a_condition_must_name_a_key() -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"optim.momentum": {"float": [0.5, 0.9], "when": {"optim.nam": "sgd"}}}
    with pytest.raises(ConfigError, match=r"search.space\['optim.momentum'\].when names 'optim.nam'"):
        validate_experiment(raw)
