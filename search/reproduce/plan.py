"""Which trial, which config: the plan of a reproduction, and the MLflow run it is recorded in.

The trial's config is rebuilt from its params; the config its run recorded wins when the experiment
file changed since. Every difference from what the trial trained (--epochs, --set, another precision
on this machine) is noted, so that the verdict can say why a result is not comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lightning_modules.config import RunConfig
from lightning_modules.precision import resolve_precision
from lightning_modules.strict_model import MAX_SEED
from search.errors import ConfigError, ConvtuneError
from search.experiment.dotted import config_from_params, set_by
from search.experiment.serialized import config_from_yaml, config_params, config_yaml, training_params
from search.experiment.spec import ExperimentSpec
from search.reproduce.options import ReproduceOptions
from search.study.study import best_trial
from search.tracking import vocabulary as v
from search.tracking.tracker import Tracker

REPRODUCIBLE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def select_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial `number`, or the best COMPLETE trial; a clear error when there is none to reproduce."""
    if number is None:
        best = best_trial(study)
        if best is None:
            raise ConvtuneError(
                f"study {study.study_name!r} has no COMPLETE trial yet; run `convtune tune` first "
                "or pick a trial with --trial N."
            )
        return best
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(
            f"study {study.study_name!r} has no trial {number} (trials 0..{max(trials, default=-1)}); "
            "see `convtune status`."
        )
    trial = trials[number]
    if trial.state not in REPRODUCIBLE_STATES:
        raise ConvtuneError(
            f"trial {number} is {trial.state.name}; only COMPLETE or PRUNED trials can be reproduced."
        )
    return trial


def trial_config(
    spec: ExperimentSpec, trial: FrozenTrial, recorded: RunConfig | None, *, overridden: bool
) -> tuple[RunConfig, list[str]]:
    """The trial's config rebuilt from its params; the config its run recorded wins when the two
    differ (the experiment file changed since), unless the user overrode fields with --set. A key
    that --set or reproduce.set sets wins over the trial's param for it."""
    overruled = set_by(trial.params, spec.set_for_reproduction)
    rebuilt = config_from_params(spec, {k: v for k, v in trial.params.items() if k not in overruled})
    if recorded is None:
        return rebuilt, ["the trial's run has no config.yaml; rebuilt from the experiment file and params."]
    differing = differing_keys(rebuilt, recorded)
    if not differing:
        return rebuilt, []
    if overridden:
        return rebuilt, [
            f"--set (or the experiment's reproduce.set) changes the trial's config ({listed(differing)}); "
            "the values may differ."
        ]
    return recorded, [
        f"the experiment file changed since the trial ({listed(differing)}); using the trial's own config."
    ]


def listed(keys: list[str], most: int = 6) -> str:
    """The first `most` keys, comma-separated, with " ..." when there are more."""
    return ", ".join(keys[:most]) + (" ..." if len(keys) > most else "")


def differing_keys(a: RunConfig, b: RunConfig) -> list[str]:
    """The dotted config keys whose values differ between `a` and `b`, sorted; data-loading settings
    (`data.num_workers`) are left out: they change how batches are loaded, not what is trained."""
    flat_a = training_params(a)
    flat_b = training_params(b)
    return sorted(key for key in flat_a.keys() | flat_b.keys() if flat_a.get(key) != flat_b.get(key))


def recorded_config(tracker: Tracker, run_id: str | None) -> RunConfig | None:
    """The config.yaml a trial's run recorded, or None when there is none to read."""
    text = tracker.read_text(run_id, "config.yaml")
    if text is None:
        return None
    return config_from_yaml(text)


@dataclass
class Plan:
    """A trial about to be reproduced: its config, what differs from the trial, and its open run."""

    study_name: str
    trial: FrozenTrial
    config: RunConfig
    notes: list[str]
    changed: list[str]
    run_id: str


# a member's plan (its run opened), with these epochs or (None) as asked
PlanFor = Callable[[FrozenTrial, int | None], Plan]


def plan_reproduction(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    study_name: str,
    trial: FrozenTrial,
    tracker: Tracker,
    *,
    overridden: bool,
    tags: dict[str, str] | None = None,
    seed_offset: int = 0,
) -> Plan:
    """The trial's config (with --epochs, and its training seed moved on by `seed_offset`), notes on
    what differs, and its reproduction run, started."""
    original_run = trial.user_attrs.get(v.ATTR_RUN_ID)
    recorded = recorded_config(tracker, original_run)
    config, notes = trial_config(spec, trial, recorded, overridden=overridden)
    trained = recorded if recorded is not None else config  # what the trial trained, as its run tells
    if options.epochs is not None:
        if options.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, but got {options.epochs}.")
        if options.epochs != config.trainer.max_epochs:
            notes.append(
                f"trainer.max_epochs={options.epochs} instead of the trial's {config.trainer.max_epochs}."
            )
            config = with_trainer(config, max_epochs=options.epochs)
    if seed_offset:
        config = with_trainer(config, seed=(config.training_seed + seed_offset) % (MAX_SEED + 1))
    precision = resolve_precision(config.trainer.precision, options.accelerator or config.trainer.accelerator)
    notes += precision_notes(tracker, original_run, precision)
    changed = differing_keys(config, trained)
    run_id = _start_run(
        tracker, study_name, trial, config, original_run, {v.TAG_PRECISION: precision, **(tags or {})}
    )
    return Plan(study_name, trial, config, notes, changed, run_id)


def with_trainer(config: RunConfig, **fields: Any) -> RunConfig:
    """`config` with these `trainer.*` fields replaced."""
    return config.model_copy(update={"trainer": config.trainer.model_copy(update=fields)})


def precision_notes(tracker: Tracker, original_run: str | None, precision: str) -> list[str]:
    """A note when this machine trains in another precision than the trial did (`precision: auto`
    picks bf16 only where the hardware has it), since the result will then differ."""
    trained = tracker.run_tag(original_run, v.TAG_PRECISION)
    if trained is None or trained == precision:
        return []
    return [
        f"trains in precision {precision} here, but the trial trained in {trained}; expect another result."
    ]


def _start_run(
    tracker: Tracker,
    study_name: str,
    trial: FrozenTrial,
    config: RunConfig,
    original_run: str | None,
    tags: dict[str, str],
) -> str:
    run_id = tracker.start_reproduction(
        study_name=study_name, trial_number=trial.number, original_run_id=original_run, tags=tags
    )
    tracker.log_params(run_id, config_params(config))
    tracker.log_text(run_id, config_yaml(config), "config.yaml")
    return run_id
