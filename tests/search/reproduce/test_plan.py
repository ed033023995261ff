"""`search.reproduce.plan`: which trial, which config, what differs from the trial, and its run."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.errors import ConfigError, ConvtuneError
from search.experiment.spec import ExperimentSpec, reproduction_spec, validate_experiment
from search.reproduce.options import ReproduceOptions
from search.reproduce.plan import (
    differing_keys,
    listed,
    plan_reproduction,
    precision_notes,
    select_trial,
    trial_config,
)
from search.tracking import vocabulary as v
from search.tracking.settings import load_settings
from search.tracking.tracker import Tracker
from tests.conftest import tiny_experiment
from tests.helpers.parallel_helpers import mlflow_client

LR = FloatDistribution(1e-3, 1e-2, log=True)


def _study(*trials: tuple[TrialState, float | None]) -> optuna.Study:
    study = optuna.create_study(study_name="tiny", direction="maximize")
    for state, value in trials:
        params, distributions = {"optim.lr": 3e-3}, {"optim.lr": LR}
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=distributions))
    return study


def _spec() -> ExperimentSpec:
    return validate_experiment(tiny_experiment())


def test_the_best_or_the_chosen_trial_or_a_clear_error() -> None:
    study = _study((TrialState.COMPLETE, 0.5), (TrialState.PRUNED, 0.7), (TrialState.FAIL, None))
    assert select_trial(study, None).number == 0, "the best COMPLETE trial, not a pruned one"
    assert select_trial(study, 1).number == 1
    with pytest.raises(ConfigError, match=r"has no trial 9 \(trials 0\.\.2\); see `convtune status`"):
        select_trial(study, 9)
    with pytest.raises(ConvtuneError, match="trial 2 is FAIL; only COMPLETE or PRUNED"):
        select_trial(study, 2)
    with pytest.raises(ConvtuneError, match="has no COMPLETE trial yet"):
        select_trial(_study((TrialState.PRUNED, 0.1)), None)


def test_the_recorded_config_wins_unless_set_overrides_it() -> None:
    spec = _spec()
    trial = _study((TrialState.COMPLETE, 0.5)).trials[0]
    rebuilt, notes = trial_config(spec, trial, None, overridden=False)
    assert rebuilt.optim.lr == 3e-3 and "has no config.yaml" in notes[0]
    assert trial_config(spec, trial, rebuilt, overridden=False) == (rebuilt, [])
    recorded = rebuilt.model_copy(update={"seed": 7})
    config, notes = trial_config(spec, trial, recorded, overridden=False)
    assert config.seed == 7 and notes == [
        "the experiment file changed since the trial (seed); using the trial's own config."
    ]
    config, notes = trial_config(spec, trial, recorded, overridden=True)
    assert (
        config.seed == 0
        and "--set (or the experiment's reproduce.set) changes the trial's config (seed)" in notes[0]
    )
    assert differing_keys(rebuilt, recorded) == ["seed"]
    loaded_otherwise = rebuilt.model_copy(update={"data": rebuilt.data.model_copy(update={"num_workers": 3})})
    assert differing_keys(rebuilt, loaded_otherwise) == [], "how batches are loaded is not what is trained"
    assert trial_config(spec, trial, loaded_otherwise, overridden=True) == (rebuilt, [])
    assert listed(["a", "b"]) == "a, b" and listed(list("abcdefgh")) == "a, b, c, d, e, f ..."


def test_a_key_that_set_or_reproduce_set_sets_wins_over_the_trials_param() -> None:
    """`reproduce --set optim.lr=0.05` trains at 0.05 though the trial sampled optim.lr=0.003."""
    trial = _study((TrialState.COMPLETE, 0.5)).trials[0]
    recorded, _ = trial_config(_spec(), trial, None, overridden=False)
    spec = reproduction_spec(_spec(), ["optim.lr=0.05"])
    config, notes = trial_config(spec, trial, recorded, overridden=True)
    assert config.optim.lr == 0.05 and "changes the trial's config (optim.lr)" in notes[0]
    raw = tiny_experiment()
    raw["reproduce"] = {"set": {"optim.lr": 0.02}}
    config, _ = trial_config(reproduction_spec(validate_experiment(raw)), trial, recorded, overridden=True)
    assert config.optim.lr == 0.02
    untouched, _ = trial_config(reproduction_spec(_spec(), ["seed=3"]), trial, recorded, overridden=True)
    assert untouched.optim.lr == 3e-3 and untouched.seed == 3


class _Tags:
    def __init__(self, precision: str | None) -> None:
        self.precision = precision

    def run_tag(self, run_id: str | None, key: str) -> str | None:
        return self.precision if key == v.TAG_PRECISION else None


def test_another_precision_than_the_trials_is_noted() -> None:
    assert precision_notes(_Tags(None), "run", "32") == []  # type: ignore[arg-type]
    assert precision_notes(_Tags("32"), "run", "32") == []  # type: ignore[arg-type]
    assert precision_notes(_Tags("bf16-mixed"), "run", "32") == [  # type: ignore[arg-type]
        "trains in precision 32 here, but the trial trained in bf16-mixed; expect another result."
    ]


def test_a_plan_starts_the_reproduction_run_with_the_config_it_will_train(workdir: Path) -> None:
    tracker = Tracker(load_settings())
    trial = _study((TrialState.COMPLETE, 0.5)).trials[0]
    with pytest.raises(ConfigError, match="--epochs must be at least 1"):
        plan_reproduction(_spec(), ReproduceOptions(epochs=0), "tiny", trial, tracker, overridden=False)
    plan = plan_reproduction(_spec(), ReproduceOptions(epochs=1), "tiny", trial, tracker, overridden=False)
    assert plan.config.trainer.max_epochs == 1 and plan.changed == ["trainer.max_epochs"]
    assert "trainer.max_epochs=1 instead of the trial's 2." in plan.notes
    run = mlflow_client().get_run(plan.run_id)
    assert run.data.tags[v.TAG_ROLE] == v.ROLE_REPRODUCTION and run.data.tags[v.TAG_PRECISION] == "32"
    assert run.data.params["trainer.max_epochs"] == "1"
    recorded = yaml.safe_load(tracker.read_text(plan.run_id, "config.yaml") or "")
    assert recorded["trainer"]["max_epochs"] == 1
    tracker.end_run(plan.run_id)
