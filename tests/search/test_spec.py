from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.spec import load_experiment, parse_override, set_dotted
from tests.conftest import EXPERIMENTS, tiny_experiment, write_experiment


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_every_experiment_file_validates(path: Path) -> None:
    spec = load_experiment(path)
    assert spec.name
    assert spec.search.n_trials >= 1


def test_numbers_written_like_1e_3_load_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "name: e\noptim: {lr: 1e-3}\nsearch: {space: {optim.lr: {float: [1e-4, 1e-1], log: true}}}\n"
    )
    spec = load_experiment(path)
    assert spec.optim.lr == pytest.approx(1e-3)
    assert spec.search.space["optim.lr"].float_range == (1e-4, 1e-1)


def test_unknown_key_names_key_file_and_allowed_keys(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["model"]["chanels"] = [8]
    path = write_experiment(tmp_path, raw)
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    message = str(error.value)
    assert "tiny.yaml" in message
    assert "unknown key 'model.chanels'" in message
    assert "channels" in message and "kernel_size" in message
    assert "\n" not in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["trainr"] = {"max_epochs": 1}
    with pytest.raises(ConfigError, match=r"unknown key 'trainr'.*trainer"):
        load_experiment(write_experiment(tmp_path, raw))


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        ("model", "dropout", 1.2, r"dropout must be in \[0, 1\), but got dropout=1.2"),
        ("optim", "lr", -1, r"optim.lr: Input should be greater than 0"),
        ("data", "val_fraction", 1.5, r"val_fraction must be in \(0, 1\)"),
        ("model", "padding", "full", r"model.padding"),
        ("optim", "name", "adagrad", r"optim.name"),
    ],
)
def test_out_of_bounds_values_are_named(
    tmp_path: Path, section: str, field: str, value: object, expected: str
) -> None:
    raw = tiny_experiment()
    raw[section][field] = value
    with pytest.raises(ConfigError, match=expected):
        load_experiment(write_experiment(tmp_path, raw))


def test_per_layer_list_must_match_depth(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["model"]["kernel_size"] = [3, 5, 7]
    with pytest.raises(ConfigError, match="kernel_size has 3 entries but channels has 2 blocks"):
        load_experiment(write_experiment(tmp_path, raw))


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


def test_space_needs_exactly_one_kind(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"optim.lr": {"float": [0.1, 0.2], "choice": [0.1]}}
    with pytest.raises(ConfigError, match="exactly one of float, int or choice"):
        load_experiment(write_experiment(tmp_path, raw))


def test_log_range_needs_positive_low(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"optim.weight_decay": {"float": [0, 0.1], "log": True}}
    with pytest.raises(ConfigError, match="log range needs low > 0"):
        load_experiment(write_experiment(tmp_path, raw))


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, tiny_experiment())
    spec = load_experiment(path, ["optim.lr=0.05", "model.channels=[4, 8, 16]", "trainer.max_epochs=3"])
    assert spec.optim.lr == 0.05
    assert spec.model.channels == [4, 8, 16]
    assert spec.trainer.max_epochs == 3


def test_override_without_equals_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--set expects key=value"):
        parse_override("optim.lr")


def test_per_layer_dotted_key_expands_a_shared_value() -> None:
    tree = {"model": {"channels": [8, 16, 32], "kernel_size": 3}}
    set_dotted(tree, "model.kernel_size.1", 5)
    assert tree["model"]["kernel_size"] == [3, 5, 3]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_names_with_path_tricks_are_refused(tmp_path: Path, name: str) -> None:
    raw = tiny_experiment(name=name)
    with pytest.raises(ConfigError, match="name"):
        load_experiment(write_experiment(tmp_path, raw))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {channels: [8, 16\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_experiment(bad)


def test_direction_follows_metric(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["metric"] = "val/loss"
    assert load_experiment(write_experiment(tmp_path, raw)).search.resolved_direction == "minimize"


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


def test_non_finite_numbers_are_refused_by_the_config_models_too() -> None:
    from pydantic import ValidationError

    from lightning_modules.config import OptimConfig, TrainerConfig

    with pytest.raises(ValidationError, match="finite number"):
        OptimConfig(lr=float("inf"))
    with pytest.raises(ValidationError, match="finite number"):
        TrainerConfig(gradient_clip_val=float("nan"))


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


def test_huge_set_indexes_are_refused_without_building_huge_lists() -> None:
    tree: dict = {"optim": {}}
    with pytest.raises(ConfigError, match="index"):
        set_dotted(tree, "optim.foo.999999999999.bar", 1)


def test_set_inside_a_scalar_is_a_config_error() -> None:
    tree: dict = {"model": {"channels": [8, 16]}, "data": {"val_fraction": 0.2}}
    with pytest.raises(ConfigError, match=r"model\.channels\.0 is 8, not a mapping or list"):
        set_dotted(tree, "model.channels.0.x", 1)
    with pytest.raises(ConfigError, match="not a mapping"):
        set_dotted(tree, "data.val_fraction.deeper", 1)
