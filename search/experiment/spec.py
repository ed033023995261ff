"""Experiment files: YAML in, a validated `ExperimentSpec` out, or one line that says what to fix.

The schema is here; dotted keys and `--set` are `search.experiment.dotted`, the checks that span the
whole file `search.experiment.checks`, how it is written down `search.experiment.serialized`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from lightning_modules.config import MAX_SEED, RunConfig, StrictModel
from lightning_modules.strict_model import check_closed_unit_interval
from search.errors import ConfigError
from search.experiment.budgets import Budget, parse_limit
from search.experiment.checks import check_cost_aware, check_space_values, refuse_unreadable_values
from search.experiment.dotted import coerce_numbers, parse_override, set_by, set_dotted
from search.experiment.names import name_problem
from search.experiment.objectives import TRAINING_METRICS, check_pareto
from search.experiment.param_spec import ParamSpec
from search.experiment.serialized import experiment_tree
from search.experiment.validation_messages import describe_validation_error
from search.experiment.yaml_loading import read_yaml_file

EXPERIMENT_ONLY = ("name", "search", "reproduce")  # the keys of an experiment that are no run config


def _safe(name: str, what: str) -> str:
    """`name`, when it may become a study, an experiment and a folder (`search.experiment.names`)."""
    problem = name_problem(name, what)
    if problem is not None:
        raise ValueError(problem)
    return name


class SamplerConfig(StrictModel):
    """`multivariate` (TPE only) models the parameters jointly instead of one at a time, which finds
    interacting settings (learning rate with weight decay, stride with kernel size) in fewer trials.
    `cost_aware` (TPE with a convnet only) weighs each candidate's promise against its predicted
    seconds per epoch, learned from the trials so far (`search/study/cost.py`); on the benchmark's wide
    Fashion-MNIST space it did not find good models sooner, so it is off unless asked for.
    `nsga2` (Optuna's NSGA-II) takes `n_startup_trials` as its population size (default 20)."""

    name: Literal["tpe", "random", "grid", "cmaes", "gp", "nsga2"] = "tpe"
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None
    n_startup_trials: Annotated[int, Field(ge=0)] | None = None
    multivariate: bool = False
    cost_aware: bool = False

    @model_validator(mode="after")
    def _tpe_options_need_tpe(self) -> SamplerConfig:
        for option in ("multivariate", "cost_aware"):
            if getattr(self, option) and self.name != "tpe":
                raise ValueError(f"{option} applies to the tpe sampler only, but got name={self.name!r}.")
        return self


class PrunerConfig(StrictModel):
    """Resources are epochs. `median` never stops a trial in its first `n_warmup_steps` epochs nor
    before `n_startup_trials` trials have finished; `successive-halving` and `hyperband` judge a trial
    after `min_resource` epochs, then after `reduction_factor` times as many, keeping the top
    1/`reduction_factor` of the trials judged at that point. No pruner stops a trial after its last
    epoch. `pareto` (the default of a Pareto study, `search/study/pareto_pruning.py`) stops a trial after
    epoch k > `n_warmup_steps` once `n_startup_trials` trials have completed, when a trial costing
    no more in every cost objective had a metric better by more than `margin` at epoch k."""

    name: Literal["median", "hyperband", "successive-halving", "pareto", "none"] = "median"
    n_startup_trials: Annotated[int, Field(ge=0)] = 2
    n_warmup_steps: Annotated[int, Field(ge=0)] = 1
    min_resource: Annotated[int, Field(ge=1)] = 1
    reduction_factor: Annotated[int, Field(ge=2)] = 3
    margin: Annotated[float, Field(ge=0)] = 0.01


class ObjectiveConfig(StrictModel):
    """One objective of a Pareto study: the training metric first, then cost metrics (minimized)."""

    metric: str
    direction: Literal["maximize", "minimize"] | None = None


class WarmStartConfig(StrictModel):
    """Seed a new study from an earlier one (`search/study/warm_start.py`): its finished trials whose
    params fit this space become priors, its `top_k` best configs are tried first. `storage` is the
    earlier study's Optuna storage (default: this study's)."""

    study: str
    storage: str | None = None
    top_k: Annotated[int, Field(ge=0)] = 3

    @field_validator("study")
    @classmethod
    def _safe_study(cls, value: str) -> str:
        return _safe(value, "search.warm_start.study")


class SearchConfig(StrictModel):
    """`checkpoints` saves every trial at every epoch end, so that a retried trial (its worker was
    killed, or interrupted) continues from its last finished epoch instead of epoch 1."""

    metric: str = "val/acc"
    direction: Literal["maximize", "minimize"] | None = None
    n_trials: Annotated[int, Field(ge=1)] = 20
    timeout: Annotated[float, Field(gt=0)] | None = None
    max_retries: Annotated[int, Field(ge=0)] = 2
    artifacts: bool = True
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    constraints: dict[str, str | float] = Field(default_factory=dict)
    objectives: list[ObjectiveConfig] | None = None
    checkpoints: bool = True
    warm_start: WarmStartConfig | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in TRAINING_METRICS:
            raise ValueError(
                f"metric must be one of {', '.join(TRAINING_METRICS)}, but got metric={value!r}."
            )
        return value

    @field_validator("constraints")
    @classmethod
    def _valid_budgets(cls, value: dict[str, str | float]) -> dict[str, str | float]:
        for metric, expression in value.items():
            parse_limit(metric, expression)
        return value

    @model_validator(mode="after")
    def _pareto(self) -> SearchConfig:
        check_pareto(self)
        return self

    @property
    def resolved_direction(self) -> Literal["maximize", "minimize"]:
        if self.direction is not None:
            return self.direction
        return "maximize" if self.metric.endswith("acc") else "minimize"

    @property
    def budgets(self) -> list[Budget]:
        return [parse_limit(metric, expression) for metric, expression in self.constraints.items()]

    @property
    def is_pareto(self) -> bool:
        return self.objectives is not None

    @property
    def cost_objectives(self) -> list[str]:
        """The cost metrics a Pareto study minimizes beside its metric (none for a single objective)."""
        return [objective.metric for objective in self.objectives or []][1:]

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """The study's directions: the metric's, then one `minimize` per cost objective."""
        return [self.resolved_direction] + ["minimize"] * len(self.cost_objectives)


# Greedy selection replaces the plain average only when it wins by more than this many standard
# errors on the validation split: on an hour run's members and on digits this chose ensembles that
# tested +0.04 and +0.06 points better, over validation resamples, than any gain (0) did
# (benchmarks/ensemble_selection.py, docs/performance.md, twelfth run)
DEFAULT_GREEDY_MARGIN = 2.0


class TeacherConfig(StrictModel):
    """`reproduce.teacher`: a trained model (`models:/name@alias`, `runs:/<id>/model` or a saved file)
    whose class probabilities on each training image are blended with its label, `weight` parts
    teacher to `1 - weight` label (knowledge distillation; `lightning_modules.distillation`)."""

    model: str
    weight: float = 0.5

    @field_validator("model")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model is empty; give models:/<name>@champion, runs:/<run id>/model or a path.")
        return value.strip()

    @field_validator("weight")
    @classmethod
    def _weight_range(cls, value: float) -> float:
        return check_closed_unit_interval("weight", value)


class ReproduceConfig(StrictModel):
    """What `convtune reproduce` trains when its flags do not say (they win), and what `convtune tune
    --budget` reproduces after the search: `epochs` (like `--epochs`), `top_k` (like `--top-k`; 1 is
    the single best trial, registered as @champion), `set` (dotted keys like `--set`, applied to the
    reproduction only, e.g. `{data.train_fraction: 1}`), `select_by` and `greedy_margin` (like
    `--select-by` and `--greedy-margin`: how the ensemble of `top_k` members is chosen on the
    validation split), `distinct` (like `--distinct`: `params`, the K best trials with distinct
    params, or `architecture`, the best trial of each of the K best networks), `teacher` (like
    `--teacher`: a trained model every reproduced network learns from, see `TeacherConfig`)."""

    epochs: Annotated[int, Field(ge=1)] | None = None
    top_k: Annotated[int, Field(ge=1, le=20)] | None = None
    select_by: Literal["accuracy", "nll"] = "accuracy"
    greedy_margin: Annotated[float, Field(ge=0)] = DEFAULT_GREEDY_MARGIN
    distinct: Literal["params", "architecture"] = "params"
    teacher: TeacherConfig | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class ExperimentSpec(RunConfig):
    """An experiment file: a base run config, its name, how to search around it, how to reproduce."""

    name: str
    search: SearchConfig = Field(default_factory=SearchConfig)
    reproduce: ReproduceConfig = Field(default_factory=ReproduceConfig)
    _fixed_by_set: list[str] = PrivateAttr(default_factory=list)  # searched keys a --set fixed
    _set_for_reproduction: list[str] = PrivateAttr(default_factory=list)  # reproduce.set and --set keys

    @property
    def fixed_by_set(self) -> list[str]:
        """The keys `--set` fixed that the experiment file searches: no longer in `search.space`."""
        return list(self._fixed_by_set)

    @property
    def set_for_reproduction(self) -> list[str]:
        """The keys `reproduce.set` and `reproduce --set` set: they win over a trial's own params."""
        return list(self._set_for_reproduction)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return _safe(value, "name")

    def run_config(self) -> RunConfig:
        """The base run config, before any search param is set."""
        return RunConfig.model_validate(self.run_dict())

    def run_dict(self) -> dict[str, Any]:
        """The base run config as a plain tree: the experiment's `experiment_tree` without its
        `name`, `search` and `reproduce`."""
        tree = experiment_tree(self)
        for key in EXPERIMENT_ONLY:
            del tree[key]
        return tree


def reproduction_spec(
    spec: ExperimentSpec, overrides: Sequence[str] = (), *, source: str = "<experiment>"
) -> ExperimentSpec:
    """The experiment as a reproduction trains it: `reproduce.set`, then `--set` (which wins)."""
    if not spec.reproduce.set and not overrides:
        return spec
    raw = experiment_tree(spec)
    raw["reproduce"]["set"] = {}  # applied here, once
    keys = list(spec.reproduce.set)
    for key, value in spec.reproduce.set.items():
        if key.split(".")[0] not in RunConfig.model_fields:
            raise ConfigError(
                f"{source}: reproduce.set key {key!r} must start with one of "
                f"{', '.join(sorted(RunConfig.model_fields))}."
            )
        set_dotted(raw, key, coerce_numbers(value))
    keys += apply_overrides(raw, overrides)
    reproduction = validate_experiment(raw, source=f"{source} (reproduce.set)")
    reproduction._set_for_reproduction = keys
    return reproduction


def read_yaml(path: Path) -> dict[str, Any]:
    """An experiment file's tree, numbers written like `1e-3` read as numbers."""
    raw = read_yaml_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an experiment file must be a mapping of keys like name, data, model.")
    return coerce_numbers(raw)


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentSpec:
    """Reads, overrides (`key=value`) and validates an experiment file; raises `ConfigError`."""
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem.replace("_", "-"))
    keys = apply_overrides(raw, overrides)
    fixed = unsearch(raw, [key for key in keys if key.split(".")[0] in RunConfig.model_fields])
    spec = validate_experiment(raw, source=str(path))
    spec._fixed_by_set = fixed
    return spec


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    """Sets each `--set key=value` in `raw`, in order; the keys set."""
    keys = []
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(raw, key, value)
        keys.append(key)
    return keys


def unsearch(raw: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """Takes the searched keys that `--set` fixes out of the space (a value the user set on the
    command line is what they mean to train, not a starting point the sampler overwrites)."""
    search = raw.get("search")
    space = search.get("space") if isinstance(search, dict) else None
    if not isinstance(space, dict):
        return []
    fixed = set_by([str(key) for key in space], keys)
    for key in fixed:
        del space[key]
    return fixed


def validate_experiment(raw: dict[str, Any], *, source: str = "<experiment>") -> ExperimentSpec:
    """The experiment in `raw` (an experiment file's tree), checked; raises `ConfigError`."""
    refuse_unreadable_values(raw, source)
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error, ExperimentSpec)}") from None
    check_space_values(spec, source)
    check_cost_aware(spec, source)
    if spec.reproduce.set:
        reproduction_spec(spec, source=source)
    return spec
