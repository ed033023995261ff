"""An Optuna study: created or loaded (rerunning resumes), found by name, its own trials and best."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import ConfigError
from search.experiment.spec import ExperimentSpec
from search.study.samplers import make_pruner, make_sampler
from search.study.storage import StorageHandle
from search.tracking import vocabulary as v

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_study(
    spec: ExperimentSpec,
    handle: StorageHandle,
    study_name: str | None = None,
    data_shape: tuple[int, tuple[int, int]] | None = None,
) -> optuna.Study:
    """Creates the study, or loads it when it exists (rerunning resumes).

    A fresh study samples from the experiment's seed; a study that already exists (a resumed run, or
    another worker joining) reseeds its sampler, so that no two processes draw the same sequence.
    """
    name = study_name or spec.name
    directions = spec.search.directions
    existed = name in optuna.get_all_study_names(handle.storage)
    try:
        study = optuna.create_study(
            storage=handle.storage,
            study_name=name,
            sampler=make_sampler(spec, data_shape),
            pruner=make_pruner(spec),
            directions=directions,
            load_if_exists=True,
        )
    except ValueError as error:
        raise ConfigError(f"study {name!r}: {error}") from None
    found = [direction.name.lower() for direction in study.directions]
    if found != directions:
        raise ConfigError(
            f"study {name!r} in {handle.url} has directions {', '.join(found)}, but the experiment's "
            f"search.direction/objectives give {', '.join(directions)}; use another --study name."
        )
    if existed:
        study.sampler.reseed_rng()
    return study


def find_study(handle: StorageHandle, name: str) -> optuna.Study:
    names = optuna.get_all_study_names(handle.storage)
    if name not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(
            f"no study named {name!r} in {handle.url} (studies there: {known}); run `convtune tune` first."
        )
    return optuna.load_study(study_name=name, storage=handle.storage)


def is_prior(trial: FrozenTrial) -> bool:
    """A finished trial copied from another study by a warm start (`search.warm_start`): the sampler
    learns from it, but it is no trial of this study (not counted, never its best)."""
    return v.ATTR_WARM_START_OF in trial.user_attrs


def own_trials(study: optuna.Study, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
    """The study's trials without the priors a warm start added."""
    trials = study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)
    return [trial for trial in trials if not is_prior(trial)]


def count_states(study: optuna.Study) -> dict[str, int]:
    counts = {state.name: 0 for state in TrialState}
    for trial in own_trials(study):
        counts[trial.state.name] += 1
    return counts


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The COMPLETE trial with the best metric (a Pareto study's first objective: its most accurate)."""
    completed = own_trials(study, (TrialState.COMPLETE,))
    if not completed:
        return None
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(completed, key=lambda t: t.values[0])
