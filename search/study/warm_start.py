"""Warm start: a new study learns from an earlier one before its first trial.

`search.warm_start: {study, storage, top_k}` (or `convtune tune --warm-start STUDY [--warm-storage
URL]`) reads the earlier study's finished trials. Those whose params fit the new space are added
to the new study as priors (`Study.add_trials`, each with the new space's distributions, marked by
the user attr `warm_start_of`): the sampler models them like its own trials, but convtune neither
counts them against `n_trials` nor reports them as the study's best (`search.study.study.own_trials`).
The `top_k` best of them are enqueued, so that the new study measures them first. A parameter the
new space samples and the earlier study fixed takes the earlier experiment's value (what its trials
trained with, read from the earlier study's `experiment` attr). A trial does not fit when the new
space samples a parameter its network does not have, when one of its values lies outside the new
range or choices, or when it searched a parameter that the new experiment fixes at another value;
those are skipped and counted by reason. Done once per study: rerunning the study adds nothing.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from search.errors import ConfigError
from search.experiment.dotted import get_dotted, set_dotted
from search.experiment.param_spec import ParamSpec
from search.experiment.space import is_active
from search.experiment.spec import ExperimentSpec, WarmStartConfig
from search.study.storage import StorageHandle, open_storage
from search.study.storage_url import RDB_PREFIXES
from search.study.study import find_study
from search.tracking import vocabulary as v

SOURCE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
NEW_PARAMETER = "a parameter the new space samples is missing"  # neither searched nor fixed by it
OUT_OF_RANGE = "a value lies outside the new space"
FIXED_OTHERWISE = "a searched parameter is now fixed at another value"


@dataclass
class WarmStartReport:
    source: str
    added: int = 0
    completed: int = 0  # priors with a value the earlier study fixed, for a parameter the new one searches
    enqueued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    earlier: bool = False  # the study was warm-started by an earlier run of it: nothing added now

    def line(self) -> str:
        if self.earlier:
            return f"warm start from study {self.source}: done when this study began ({self.added} priors)."
        skipped = sum(self.skipped.values())
        reasons = "; ".join(f"{count}: {reason}" for reason, count in self.skipped.items())
        completed = f" ({self.completed} with values it fixed)" if self.completed else ""
        return (
            f"warm start from study {self.source}: {self.added} finished trials added as priors{completed}, "
            f"{skipped} skipped"
            + (f" ({reasons})" if reasons else "")
            + f", top {self.enqueued} enqueued first."
        )

    def as_attr(self) -> dict[str, Any]:
        return {
            "study": self.source,
            "added": self.added,
            "completed": self.completed,
            "enqueued": self.enqueued,
            "skipped": self.skipped,
        }


def load_source(config: WarmStartConfig, handle: StorageHandle, study_name: str) -> optuna.Study:
    """The earlier study, checked before anything is written: it exists and is not this study."""
    if config.storage and not config.storage.startswith(RDB_PREFIXES) and not Path(config.storage).is_file():
        raise ConfigError(
            f"search.warm_start.storage must be an existing study storage, but got {config.storage!r} "
            "(no such file)."
        )
    source_handle = open_storage(config.storage) if config.storage else handle
    if config.study == study_name and source_handle.url == handle.url:
        raise ConfigError(
            f"search.warm_start.study must name another study, but got {config.study!r}, this study itself."
        )
    try:
        return find_study(source_handle, config.study)
    except ConfigError as error:
        raise ConfigError(f"warm start: {error}") from None


def warm_start(
    study: optuna.Study, source: optuna.Study, spec: ExperimentSpec, top_k: int
) -> WarmStartReport:
    """Adds the source's fitting trials as priors and enqueues its `top_k` best (once per study)."""
    done = study.user_attrs.get(v.STUDY_ATTR_WARM_START)
    if isinstance(done, dict):
        return WarmStartReport(str(done.get("study")), int(done.get("added", 0)), earlier=True)
    if [d.name for d in source.directions] != [d.name for d in study.directions]:
        raise ConfigError(
            f"warm start: study {source.study_name!r} optimizes "
            f"{', '.join(d.name.lower() for d in source.directions)}, but this study "
            f"{', '.join(d.name.lower() for d in study.directions)}; "
            "warm-start from a study of the same metric."
        )
    report = WarmStartReport(source.study_name)
    priors, skipped, report.completed = _priors(source, spec)
    study.add_trials(priors)
    report.added, report.skipped = len(priors), dict(skipped)
    for prior in _best(priors, study, top_k):
        study.enqueue_trial(
            dict(prior.params), user_attrs={v.ATTR_SEEDED_FROM: prior.user_attrs[v.ATTR_WARM_START_OF]}
        )
        report.enqueued += 1
    study.set_user_attr(v.STUDY_ATTR_WARM_START, report.as_attr())
    return report


def _priors(source: optuna.Study, spec: ExperimentSpec) -> tuple[list[FrozenTrial], Counter[str], int]:
    """The source's fitting trials as priors, the count of those skipped by reason, and how many
    priors hold a value the source fixed."""
    priors: list[FrozenTrial] = []
    skipped: Counter[str] = Counter()
    completed = 0
    earlier = source.user_attrs.get(v.STUDY_ATTR_EXPERIMENT)
    for trial in source.get_trials(deepcopy=False, states=SOURCE_STATES):
        if v.ATTR_WARM_START_OF in trial.user_attrs:
            continue  # the source's own priors came from yet another study
        trained = _trained_config(earlier, trial.params) if isinstance(earlier, dict) else None
        found = fit(spec, trial.params, trained)
        if found.problem is not None:
            skipped[found.problem] += 1
            continue
        priors.append(_prior(source.study_name, trial, found))
        completed += not set(found.params) <= set(trial.params)
    return priors, skipped, completed


def _trained_config(experiment: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The earlier experiment's tree with a trial's params set: what that trial trained (None when
    the params do not go into the tree, e.g. a study attr written by hand)."""
    tree = copy.deepcopy(dict(experiment))
    try:
        for key, value in params.items():
            set_dotted(tree, key, value)
    except ConfigError:
        return None
    return tree


@dataclass(frozen=True)
class Fit:
    """A trial's params in the new space (searched by it, or fixed by its study), or why it does not fit."""

    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    problem: str | None = None


def fit(spec: ExperimentSpec, params: Mapping[str, Any], trained: Mapping[str, Any] | None = None) -> Fit:
    """The new space's params and distributions for a trial that searched `params`, or why they do
    not fit it. `trained`, the whole config the trial trained, gives the values of parameters the
    new space samples and the trial's study fixed."""
    base = spec.run_dict()
    config = spec.run_dict()
    chosen: dict[str, Any] = {}
    distributions: dict[str, BaseDistribution] = {}
    for key, param in spec.search.space.items():
        if not is_active(param, config):
            continue
        if key in params:
            value = params[key]
        elif trained is None or (value := get_dotted(trained, key)) is None:
            return Fit(problem=NEW_PARAMETER)
        distribution = distribution_of(param)
        if not _contains(distribution, value):
            return Fit(problem=OUT_OF_RANGE)
        chosen[key], distributions[key] = value, distribution
        set_dotted(config, key, value)
    for key, value in params.items():
        if key not in distributions and get_dotted(base, key) != value:
            return Fit(problem=FIXED_OTHERWISE)
    return Fit(chosen, distributions)


def distribution_of(param: ParamSpec) -> BaseDistribution:
    """The distribution `search.experiment.space.suggest_value` samples `param` from."""
    if param.kind == "choice":
        return CategoricalDistribution(param.choice)  # type: ignore[arg-type]
    if param.kind == "int":
        low, high = param.int_range  # type: ignore[misc]
        return IntDistribution(low, high, log=param.log, step=int(param.step) if param.step else 1)
    low, high = param.float_range  # type: ignore[misc]
    return FloatDistribution(low, high, log=param.log, step=param.step)


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return any(value == choice and type(value) is type(choice) for choice in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    assert isinstance(distribution, (IntDistribution, FloatDistribution))
    if not distribution.low <= value <= distribution.high:
        return False
    step = distribution.step
    if step is None:
        return True
    steps = (value - distribution.low) / step
    return abs(steps - round(steps)) < 1e-8


def _prior(source: str, trial: FrozenTrial, found: Fit) -> FrozenTrial:
    return optuna.trial.create_trial(
        state=trial.state,
        values=trial.values if trial.state == TrialState.COMPLETE else None,
        params=found.params,
        distributions=found.distributions,
        intermediate_values=dict(trial.intermediate_values),
        user_attrs={v.ATTR_WARM_START_OF: f"{source}#{trial.number}"},
    )


def _best(priors: list[FrozenTrial], study: optuna.Study, top_k: int) -> list[FrozenTrial]:
    complete = [p for p in priors if p.state == TrialState.COMPLETE and p.values]
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return sorted(complete, key=lambda p: p.values[0], reverse=maximize)[:top_k]
