"""The cost-aware TPE sampler: a line from multiply-adds to seconds per epoch."""

from __future__ import annotations

import datetime
import random
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search.experiment.space import suggest
from search.experiment.spec import ExperimentSpec, validate_experiment
from search.study.cost import CostAwareTPESampler, CostModel, macs_estimator, seconds_per_epoch
from search.study.prepare import prepare_study
from search.study.runner import TuneOptions
from search.study.samplers import make_sampler
from tests.conftest import tiny_experiment

DIGITS = (1, (8, 8))


SPACE = {
    "model.channels.0": {"choice": [4, 8, 32, 64]},
    "model.kernel_size": {"choice": [3, 5, 7]},
    "model.stride": {"choice": [1, 2]},
    "model.padding": {"choice": ["same", "valid"]},
    "optim.lr": {"float": [1e-3, 1e-1], "log": True},
}


def _spec(**sampler: Any) -> ExperimentSpec:
    raw = tiny_experiment()
    raw["search"]["sampler"] = {
        "name": "tpe",
        "seed": 0,
        "n_startup_trials": 5,
        "multivariate": True,
        **sampler,
    }
    raw["search"]["space"] = SPACE
    return validate_experiment(raw)


def test_cost_model_recovers_a_line() -> None:
    model = CostModel.fit([1e6, 2e6, 4e6], [1.5, 2.0, 3.0])
    assert model is not None
    assert model.fixed == pytest.approx(1.0)
    assert model.per_mac == pytest.approx(5e-7)
    assert model.seconds(np.array([0.0, 8e6])) == pytest.approx([1.0, 5.0])


@pytest.mark.parametrize(
    ("macs", "seconds"),
    [([1e6, 2e6], [1.0, 2.0]), ([1e6, 1e6, 1e6], [1.0, 2.0, 3.0]), ([1e6, 2e6, 3e6], [3.0, 2.0, 1.0])],
    ids=["too-few-trials", "one-size", "bigger-is-faster"],
)
def test_cost_model_waits_for_trials_that_show_the_trend(macs: list[float], seconds: list[float]) -> None:
    assert CostModel.fit(macs, seconds) is None


def test_cost_model_keeps_a_positive_intercept() -> None:
    model = CostModel.fit([1e6, 2e6, 3e6], [0.5, 2.0, 3.5])  # the line crosses zero before 1e6
    assert model is not None
    assert model.fixed == pytest.approx(0.05)


def test_cost_model_validates() -> None:
    with pytest.raises(ValueError, match=r"fixed must be positive, but got fixed=0"):
        CostModel(fixed=0, per_mac=1.0)
    with pytest.raises(ValueError, match=r"per_mac must be non-negative, but got per_mac=-1"):
        CostModel(fixed=1.0, per_mac=-1.0)


def test_macs_estimator_counts_convs_and_refuses_vanishing_maps() -> None:
    estimate = macs_estimator(_spec(), DIGITS)
    small = estimate({"model.channels.0": 4, "model.kernel_size": 3})
    large = estimate({"model.channels.0": 64, "model.kernel_size": 3})
    assert small is not None and large is not None
    assert large > 4 * small
    vanishing = {"model.kernel_size": 7, "model.stride": 2, "model.padding": "valid"}
    assert estimate(vanishing) is None


def _finished_trial(number_seconds: float, epochs: int, state: TrialState = TrialState.COMPLETE) -> Any:
    start = datetime.datetime(2026, 1, 1)
    return optuna.trial.FrozenTrial(
        number=0,
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        values=None,
        datetime_start=start,
        datetime_complete=start + datetime.timedelta(seconds=number_seconds),
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={step: 0.5 for step in range(1, epochs + 1)},
        trial_id=0,
    )


def test_seconds_per_epoch_divides_by_the_epochs_trained() -> None:
    assert seconds_per_epoch(_finished_trial(12.0, 4)) == pytest.approx(3.0)
    assert seconds_per_epoch(_finished_trial(5.0, 1, TrialState.PRUNED)) == pytest.approx(5.0)
    assert seconds_per_epoch(_finished_trial(5.0, 0, TrialState.PRUNED)) is None  # infeasible: no epoch


def _history(spec: ExperimentSpec, count: int, seed: int) -> list[optuna.trial.FrozenTrial]:
    """Finished trials whose accuracy has nothing to do with size, and whose time grows with it;
    networks whose maps vanish are pruned before training."""
    estimate = macs_estimator(spec, DIGITS)
    rng = random.Random(seed)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    scratch = optuna.create_study(sampler=sampler, direction="maximize")
    trials = []
    start = datetime.datetime(2026, 1, 1)
    while len(trials) < count:
        trial = scratch.ask()
        params, _ = suggest(trial, spec)
        macs = estimate(params)
        scratch.tell(trial, state=TrialState.FAIL)
        distributions = scratch.trials[-1].distributions
        if macs is None:  # pruned before training, as the objective does
            trials.append(
                optuna.trial.create_trial(state=TrialState.PRUNED, params=params, distributions=distributions)
            )
            continue
        seconds = 2 * (0.1 + macs / 1e6)  # two epochs
        trials.append(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=rng.uniform(0.8, 0.9),
                params=params,
                distributions=distributions,
                intermediate_values={1: 0.8, 2: 0.85},
            )
        )
        trials[-1].datetime_start = start
        trials[-1].datetime_complete = start + datetime.timedelta(seconds=seconds)
    return trials


def _chosen_macs(spec: ExperimentSpec, sampler: optuna.samplers.BaseSampler) -> list[int | None]:
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.add_trials(_history(spec, 30, seed=1))
    estimate = macs_estimator(spec, DIGITS)
    chosen = []
    for _ in range(12):
        trial = study.ask()
        params, _ = suggest(trial, spec)
        chosen.append(estimate(params))
        study.tell(trial, state=TrialState.FAIL)  # leaves the history as it was
    return chosen


def test_cost_aware_tpe_learns_the_cost_and_picks_cheaper_runnable_networks() -> None:
    spec = _spec(cost_aware=True)
    sampler = make_sampler(spec, DIGITS)
    assert isinstance(sampler, CostAwareTPESampler)
    cost_aware = _chosen_macs(spec, sampler)
    plain = _chosen_macs(_spec(), make_sampler(_spec()))
    assert sampler.cost_model is not None
    assert sampler.cost_model.fixed == pytest.approx(0.1, rel=1e-3)
    assert sampler.cost_model.per_mac == pytest.approx(1e-6, rel=1e-3)
    assert None not in cost_aware
    assert np.mean(cost_aware) < 0.5 * np.mean([m for m in plain if m is not None])


def test_a_tuned_study_gets_the_cost_aware_sampler(workdir: Path) -> None:
    study = prepare_study(_spec(cost_aware=True), TuneOptions(progress=False)).study
    assert isinstance(study.sampler, CostAwareTPESampler)


def test_cost_aware_sampler_needs_the_input_shape() -> None:
    with pytest.raises(ValueError, match="needs data_shape"):
        make_sampler(_spec(cost_aware=True))


def test_the_line_is_refitted_only_when_more_trials_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[int] = []
    fit = CostModel.fit.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        CostModel, "fit", classmethod(lambda cls, x, y: fits.append(len(x)) or fit(cls, x, y))
    )
    spec = _spec(cost_aware=True, multivariate=False)  # one `_sample` per parameter
    chosen = _chosen_macs(spec, make_sampler(spec, DIGITS))
    assert len(chosen) == 12 and None not in chosen
    assert len(fits) == 1  # the history stays the same while the 12 trials ask for 5 params each
