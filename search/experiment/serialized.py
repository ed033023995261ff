"""How an experiment and a run config are written down, and read back.

- `experiment_tree`: an experiment as plain JSON values under the file's own keys (`float:`,
  `int:`): what a worker process, the study's `experiment` attr and a reproduction validate again;
- `config_yaml` / `config_from_yaml`: the `config.yaml` of a trial's or a reproduction's run;
- `config_params`: a run config as the dotted params MLflow records; `training_params` without
  the data-loading settings (`LOADING_ONLY_KEYS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from lightning_modules.config import RunConfig
from search.experiment.dotted import flatten_config

if TYPE_CHECKING:
    from search.experiment.spec import ExperimentSpec


def experiment_tree(spec: ExperimentSpec) -> dict[str, Any]:
    """The experiment as its file would say it: `validate_experiment` reads it back unchanged."""
    return spec.model_dump(mode="json", by_alias=True)


# How data is loaded, not what is trained: a worker sets these for its own CPU slot, so two configs
# that differ only here train the same network on the same batches.
LOADING_ONLY_KEYS = ("data.num_workers",)


def training_params(config: RunConfig) -> dict[str, Any]:
    """`config_params` without `LOADING_ONLY_KEYS`: what decides the trained network."""
    return {k: v for k, v in config_params(config).items() if k not in LOADING_ONLY_KEYS}


def config_params(config: RunConfig) -> dict[str, Any]:
    """Every setting of a run config under its dotted name (`optim.lr`, `model.channels`)."""
    return flatten_config(config.model_dump(mode="json"))


def config_yaml(config: RunConfig) -> str:
    """A run config as the `config.yaml` its MLflow run keeps, in the config's own key order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_from_yaml(text: str) -> RunConfig:
    """The run config of a `config.yaml` that `config_yaml` wrote."""
    return RunConfig.model_validate(yaml.safe_load(text))
