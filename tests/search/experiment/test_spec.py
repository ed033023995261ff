"""The experiment file's schema, its loading and its `reproduce:` section: `search.experiment.spec`."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.spec import load_experiment, reproduction_spec, validate_experiment
from tests.conftest import EXPERIMENTS, tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli


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


def test_per_layer_list_must_match_depth(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["model"]["kernel_size"] = [3, 5, 7]
    with pytest.raises(ConfigError, match="kernel_size has 3 entries but channels has 2 blocks"):
        load_experiment(write_experiment(tmp_path, raw))


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, tiny_experiment())
    spec = load_experiment(path, ["optim.lr=0.05", "model.channels=[4, 8, 16]", "trainer.max_epochs=3"])
    assert spec.optim.lr == 0.05
    assert spec.model.channels == [4, 8, 16]
    assert spec.trainer.max_epochs == 3


def test_a_set_of_a_searched_key_fixes_it_and_takes_it_out_of_the_space(tmp_path: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] |= {
        "model.channels.0": {"choice": [4, 8]},
        "model.dropout": {"float": [0.0, 0.5]},
        "optim.weight_decay": {"float": [1e-5, 1e-2], "log": True},
    }
    path = write_experiment(tmp_path, raw)
    spec = load_experiment(path, ["optim.lr=0.05", "model.channels=[4, 8]", "search.n_trials=3"])
    assert spec.optim.lr == 0.05 and spec.model.channels == [4, 8]
    assert spec.fixed_by_set == ["optim.lr", "model.channels.0"]
    assert list(spec.search.space) == ["model.dropout", "optim.weight_decay"]
    untouched = load_experiment(path)
    assert untouched.fixed_by_set == [] and "optim.lr" in untouched.search.space


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


def test_experiment_files_round_trip(tmp_path: Path) -> None:
    raw = tiny_experiment()
    assert load_experiment(write_experiment(tmp_path, raw)).name == "tiny"


@pytest.mark.parametrize("option", ["multivariate", "cost_aware"])
def test_a_tpe_option_on_another_sampler_is_a_config_error(option: str) -> None:
    raw = tiny_experiment()
    raw["search"]["sampler"] = {"name": "random", option: True}
    with pytest.raises(
        ConfigError, match=rf"{option} applies to the tpe sampler only, but got name='random'"
    ):
        validate_experiment(raw)


# --- the experiment's reproduce: section -----------------------------------------------------------


def test_the_reproduce_section_applies_to_the_reproduction_only(workdir: Path) -> None:
    raw = tiny_experiment(reproduce={"epochs": 3, "top_k": 2, "set": {"data.train_fraction": 0.5}})
    spec = load_experiment(write_experiment(workdir, raw))
    assert spec.data.train_fraction == 1.0 and spec.reproduce.epochs == 3
    assert "reproduce" not in spec.run_dict()
    reproduction = reproduction_spec(spec, ["data.train_fraction=0.25"])
    assert reproduction.data.train_fraction == 0.25  # --set wins over the section
    assert reproduction_spec(spec).data.train_fraction == 0.5


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"set": {"search.n_trials": 3}}, "reproduce.set key 'search.n_trials' must start with one of"),
        ({"set": {"data.train_fraction": 2}}, "train_fraction must be in (0, 1]"),
        ({"top_k": 0}, "reproduce.top_k"),
        ({"epoch": 3}, "unknown key 'reproduce.epoch'"),
    ],
)
def test_a_bad_reproduce_section_is_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], section: dict, message: str
) -> None:
    experiment = write_experiment(workdir, tiny_experiment(reproduce=section))
    result = run_cli(["check", str(experiment)], capsys)
    assert result.code == 2
    assert message in result.one_line_error()
