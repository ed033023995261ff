"""`search.reproduce.top_trials`: which trials an ensemble retrains."""

from __future__ import annotations

import optuna

from search.reproduce.top_trials import top_trials


def test_top_trials_counts_repeated_params_once() -> None:
    study = optuna.create_study(direction="maximize")
    for value, lr in ((0.9, 0.1), (0.95, 0.2), (0.95, 0.2), (0.8, 0.3)):
        study.enqueue_trial({"lr": lr})
        study.optimize(lambda t, value=value: (t.suggest_float("lr", 0.01, 1), value)[1], n_trials=1)
    trials, notes = top_trials(study, 3)
    assert [t.number for t in trials] == [1, 0, 3] and notes == []
    trials, notes = top_trials(study, 5)
    assert len(trials) == 3 and "3 distinct COMPLETE trials, not 5" in notes[0]


def _study_of(trials: list[tuple[float, dict[str, object]]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    distributions = {
        "model.channels.0": optuna.distributions.CategoricalDistribution([16, 32]),
        "model.dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
        "optim.lr": optuna.distributions.FloatDistribution(1e-4, 1.0),
    }
    for value, params in trials:
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={k: distributions[k] for k in params}, value=value
            )
        )
    return study


def test_top_trials_by_architecture_takes_the_best_trial_of_each_network() -> None:
    study = _study_of(
        [
            (0.90, {"model.channels.0": 16, "model.dropout": 0.1, "optim.lr": 0.01}),
            (0.95, {"model.channels.0": 32, "model.dropout": 0.1, "optim.lr": 0.01}),
            (0.94, {"model.channels.0": 32, "model.dropout": 0.2, "optim.lr": 0.02}),  # 32 again
            (0.93, {"model.channels.0": 32, "model.dropout": 0.1, "optim.lr": 0.03}),  # 32 again
        ]
    )
    by_params, _ = top_trials(study, 2)
    by_network, notes = top_trials(study, 2, "architecture")
    assert [t.number for t in by_params] == [1, 2]
    assert [t.number for t in by_network] == [1, 0] and notes == []


def test_top_trials_by_architecture_fills_with_the_best_others_when_networks_run_out() -> None:
    study = _study_of(
        [
            (0.90, {"model.channels.0": 16, "optim.lr": 0.01}),
            (0.95, {"model.channels.0": 32, "optim.lr": 0.01}),
            (0.93, {"model.channels.0": 32, "optim.lr": 0.02}),
            (0.94, {"model.channels.0": 32, "optim.lr": 0.03}),
        ]
    )
    trials, notes = top_trials(study, 3, "architecture")
    assert [t.number for t in trials] == [1, 3, 0]  # both networks, then the best other, best first
    assert notes == [
        "the study has 2 distinct networks among its COMPLETE trials, not 3; "
        "the best other trials fill the rest."
    ]
    trials, notes = top_trials(study, 6, "architecture")
    assert len(trials) == 4 and notes[-1] == "the study has 4 distinct COMPLETE trials, not 6."
