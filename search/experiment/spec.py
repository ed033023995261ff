"""Experiment files: YAML in, a validated `ExperimentSpec` out, or one line that says what to fix."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lightning_modules.config import RunConfig
from lightning_modules.models.registry import FAMILIES, has_arithmetic_table
from lightning_modules.strict_model import MAX_SEED, StrictModel
from search.errors import ConfigError
from search.experiment.budgets import Budget, parse_limit
from search.experiment.names import name_problem, shown
from search.experiment.yaml_loading import YamlSyntaxError, load_yaml, read_yaml_file

MAX_EXPANDED_INDEX = 1024  # `--set a.b.N=v` on a value that is no list yet makes a list of N+1 entries
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_INT = re.compile(r"^[-+]?\d+$")
TRAINING_METRICS = ("val/acc", "val/loss", "train/loss")


class ParamSpec(StrictModel):
    """One dimension of the search space: exactly one of `float`, `int`, `choice`.

    `when` makes it conditional: `{optim.name: sgd}` samples it only for trials where optim.name is sgd.
    """

    float_range: tuple[float, float] | None = Field(default=None, alias="float")
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    choice: list[Any] | None = None
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None
    when: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ParamSpec:
        kinds = [k for k in ("float", "int", "choice") if self.values_of(k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of float, int or choice, but got {kinds or 'none'}.")
        if self.choice is not None:
            if not self.choice:
                raise ValueError("choice needs at least one value.")
            if self.log or self.step is not None:
                raise ValueError("log and step apply to float and int ranges, not to choice.")
            return self
        low, high = self.values_of(kinds[0])
        if low > high:
            raise ValueError(f"the range's low must not exceed its high, but got [{low}, {high}].")
        if self.log and low <= 0:
            raise ValueError(f"a log range needs low > 0, but got low={low}.")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined.")
        return self

    def values_of(self, kind: str) -> Any:
        return {"float": self.float_range, "int": self.int_range, "choice": self.choice}[kind]

    @property
    def kind(self) -> Literal["float", "int", "choice"]:
        if self.float_range is not None:
            return "float"
        return "int" if self.int_range is not None else "choice"

    def candidates(self) -> list[Any]:
        """Values worth checking before training: every choice, or a range's ends."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.float_range or self.int_range  # type: ignore[misc]
        return [low, high] if low != high else [low]

    def describe(self) -> str:
        if self.choice is not None:
            text = "choice " + ", ".join(map(str, self.choice))
        else:
            low, high = self.float_range or self.int_range  # type: ignore[misc]
            text = f"{self.kind} [{low}, {high}]" + (" log" if self.log else "")
            text += f" step {self.step}" if self.step is not None else ""
        if self.when:
            text += " when " + ", ".join(f"{k}={v}" for k, v in self.when.items())
        return text


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
        problem = name_problem(value, "search.warm_start.study")
        if problem is not None:
            raise ValueError(problem)
        return value


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
        from search.experiment.objectives import check_pareto

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


class ReproduceConfig(StrictModel):
    """What `convtune reproduce` trains when its flags do not say (they win), and what `convtune tune
    --budget` reproduces after the search: `epochs` (like `--epochs`), `top_k` (like `--top-k`; 1 is
    the single best trial, registered as @champion), `set` (dotted keys like `--set`, applied to the
    reproduction only, e.g. `{data.train_fraction: 1}`)."""

    epochs: Annotated[int, Field(ge=1)] | None = None
    top_k: Annotated[int, Field(ge=1, le=20)] | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class ExperimentSpec(RunConfig):
    """An experiment file: a base run config, its name, how to search around it, how to reproduce."""

    name: str
    search: SearchConfig = Field(default_factory=SearchConfig)
    reproduce: ReproduceConfig = Field(default_factory=ReproduceConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        problem = name_problem(value, "name")
        if problem is not None:
            raise ValueError(problem)
        return value

    def run_config(self) -> RunConfig:
        return RunConfig.model_validate(self.run_dict())

    def run_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"name", "search", "reproduce"})


def reproduction_spec(
    spec: ExperimentSpec, overrides: Sequence[str] = (), *, source: str = "<experiment>"
) -> ExperimentSpec:
    """The experiment as a reproduction trains it: `reproduce.set`, then `--set` (which wins)."""
    if not spec.reproduce.set and not overrides:
        return spec
    raw = spec.model_dump(mode="json", by_alias=True)
    raw["reproduce"]["set"] = {}  # applied here, once
    for key, value in spec.reproduce.set.items():
        if key.split(".")[0] not in RunConfig.model_fields:
            raise ConfigError(
                f"{source}: reproduce.set key {key!r} must start with one of "
                f"{', '.join(sorted(RunConfig.model_fields))}."
            )
        set_dotted(raw, key, coerce_numbers(value))
    for text in overrides:
        set_dotted(raw, *parse_override(text))
    return validate_experiment(raw, source=f"{source} (reproduce.set)")


# --- loading -----------------------------------------------------------------------------------


def coerce_numbers(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as text; experiment files mean a number."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip()
        try:
            return int(text) if _INT.match(text) else float(text)
        except ValueError:  # more digits than Python converts; validation names the field
            return value
    if isinstance(value, list):
        return [coerce_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: coerce_numbers(v) for k, v in value.items()}
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from `--set`; the value is read as YAML (numbers, lists, true/false)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, like --set optim.lr=0.01, but got {text!r}.")
    try:
        value = load_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    except YamlSyntaxError:
        value = raw
    return key.strip(), coerce_numbers(value)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Sets `a.b.0.c` in nested dicts/lists, expanding a per-block scalar to one entry per block."""
    parts = key.split(".")
    node: Any = tree
    for index, part in enumerate(parts[:-1]):
        node = _step_into(node, part, parts[index + 1], key)
    last = parts[-1]
    if isinstance(node, list):
        position = _list_index(node, last, key)
        node[position] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        parent = ".".join(parts[:-1])
        raise ConfigError(f"{key}: {parent} is {shown(node)}, not a mapping or list; set {parent} itself.")


def _step_into(node: Any, part: str, next_part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, key)]
    if not isinstance(node, dict):
        raise ConfigError(f"{key}: {part!r} is inside a value that is not a mapping.")
    child = node.get(part)
    if next_part.isdigit() and not isinstance(child, list):
        if int(next_part) >= MAX_EXPANDED_INDEX:
            raise ConfigError(f"{key}: index {next_part} is too large; per-block lists are short.")
        channels = node.get("channels")
        depth = len(channels) if isinstance(channels, list) and channels else int(next_part) + 1
        child = [child] * depth
        node[part] = child
    elif child is None:
        child = {}
        node[part] = child
    return child


def _list_index(node: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{key}: index {part} is out of range for a list of {len(node)} entries.")
    return int(part)


def get_dotted(tree: Mapping[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node


def read_yaml(path: Path) -> dict[str, Any]:
    raw = read_yaml_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an experiment file must be a mapping of keys like name, data, model.")
    return coerce_numbers(raw)


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentSpec:
    """Reads, overrides (`key=value`) and validates an experiment file; raises `ConfigError`."""
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem.replace("_", "-"))
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(raw, key, value)
    return validate_experiment(raw, source=str(path))


def validate_experiment(raw: dict[str, Any], *, source: str = "<experiment>") -> ExperimentSpec:
    _refuse_unreadable_values(raw, source)
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error)}") from None
    _validate_space(spec, source)
    _validate_cost_aware(spec, source)
    if spec.reproduce.set:
        reproduction_spec(spec, source=source)
    return spec


def _refuse_unreadable_values(tree: Any, source: str, where: str = "") -> None:
    """Non-finite numbers (`.inf`, `nan`, `1e999`) and NUL characters, anywhere in the tree: no
    setting means them, and pydantic would accept them where a field takes any value."""
    if isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(f"{source}: {where or 'value'} must be a finite number, but got {tree}.")
    if isinstance(tree, str) and "\x00" in tree:
        raise ConfigError(f"{source}: {where or 'value'} contains a NUL character; remove it.")
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        dotted = f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and "\x00" in key:
            raise ConfigError(f"{source}: a key under {where or 'the top level'} contains a NUL character.")
        _refuse_unreadable_values(value, source, dotted)


def _validate_cost_aware(spec: ExperimentSpec, source: str) -> None:
    if not spec.search.sampler.cost_aware:
        return
    if "model.name" in spec.search.space:
        problem = "model.name is searched"
    elif not has_arithmetic_table(spec.model):
        problem = f"model.name is {spec.model.name!r}"
    else:
        return
    raise ConfigError(
        f"{source}: search.sampler.cost_aware predicts a trial's cost from a convnet's layers, but "
        f"{problem}; use model.name: convnet or set cost_aware: false."
    )


def _validate_space(spec: ExperimentSpec, source: str) -> None:
    """Every value the space can take must make a valid config; checked before any trial."""
    base = spec.run_dict()
    for key, param in spec.search.space.items():
        if key.split(".")[0] not in RunConfig.model_fields or key.startswith(("search.", "name")):
            raise ConfigError(
                f"{source}: search.space key {key!r} must start with one of "
                f"{', '.join(sorted(RunConfig.model_fields))}."
            )
        for condition in param.when or {}:
            if condition not in spec.search.space and get_dotted(base, condition) is None:
                raise ConfigError(
                    f"{source}: search.space[{key!r}].when names {condition!r}, which is no key."
                )
        for value in param.candidates():
            trial_config = _deepcopy_tree(base)
            try:
                set_dotted(trial_config, key, value)
                RunConfig.model_validate(trial_config)
            except ValidationError as error:
                raise ConfigError(
                    f"{source}: search.space[{key!r}] can take {value!r}, which gives an invalid config: "
                    f"{describe_validation_error(error)}"
                ) from None


def _deepcopy_tree(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deepcopy_tree(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_deepcopy_tree(v) for v in tree]
    return tree


# --- error messages ------------------------------------------------------------------------------


def describe_validation_error(error: ValidationError) -> str:
    """The first problem as one line: where, what, and what is allowed."""
    problems = error.errors()
    first = problems[0]
    location = [part for part in first["loc"] if part not in FAMILIES]
    dotted = ".".join(str(part) for part in location)
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
    if first["type"] == "extra_forbidden":
        allowed = allowed_keys(first["loc"][:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {dotted!r}{hint}.{more}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "this key is required"
    got = first.get("input")
    got_text = (
        "" if first["type"] in ("missing", "value_error") or isinstance(got, dict) else f" (got {shown(got)})"
    )
    text = f"{dotted or 'experiment'}: {message}{got_text}"
    return f"{text if text.endswith('.') else text + '.'}{more}"


def allowed_keys(location: Iterable[Any]) -> list[str]:
    """The field names of the config section at a pydantic error location."""
    model: type[BaseModel] | None = ExperimentSpec
    for part in location:
        if part in FAMILIES:
            model = FAMILIES[part]
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]
