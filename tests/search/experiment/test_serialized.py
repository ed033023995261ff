"""How an experiment and a run config are written down, and read back unchanged."""

from __future__ import annotations

import yaml

from search.experiment.serialized import (
    LOADING_ONLY_KEYS,
    config_from_yaml,
    config_params,
    config_yaml,
    experiment_tree,
    training_params,
)
from search.experiment.spec import validate_experiment
from tests.conftest import tiny_experiment


def test_the_experiment_tree_uses_the_file_keys_and_validates_back_to_the_same_spec() -> None:
    spec = validate_experiment(tiny_experiment())
    tree = experiment_tree(spec)
    assert tree["search"]["space"]["optim.lr"]["float"] == [1e-3, 1e-2]  # the file's key, not float_range
    assert validate_experiment(tree) == spec
    assert spec.run_dict() == {k: v for k, v in tree.items() if k not in ("name", "search", "reproduce")}


def test_config_yaml_keeps_the_config_order_and_reads_back() -> None:
    config = validate_experiment(tiny_experiment()).run_config()
    text = config_yaml(config)
    assert list(yaml.safe_load(text)) == list(type(config).model_fields)
    assert config_from_yaml(text) == config


def test_config_params_are_dotted_names_of_every_setting() -> None:
    config = validate_experiment(tiny_experiment()).run_config()
    params = config_params(config)
    assert params["optim.lr"] == 3e-3 and params["model.channels"] == [8, 16]
    assert params["data.dataset"] == "digits" and "model" not in params


def test_training_params_leave_out_only_the_data_loading_settings() -> None:
    config = validate_experiment(tiny_experiment()).run_config()
    params, training = config_params(config), training_params(config)
    assert set(params) - set(training) == set(LOADING_ONLY_KEYS) == {"data.num_workers"}
    assert all(training[key] == params[key] for key in training)
