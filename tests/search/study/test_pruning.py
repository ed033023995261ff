"""Optuna pruning from Lightning epochs: steps are epochs trained, never after the last one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import torch

from search.experiment.spec import validate_experiment
from search.study.pruning import PruningCallback
from search.study.samplers import make_pruner
from tests.conftest import AlwaysPrune, tiny_experiment

MAX_EPOCHS = 4


def _trainer(epoch_index: int, accuracy: float) -> Any:
    """What the callback reads from a Lightning Trainer at the end of a training epoch."""
    return SimpleNamespace(
        current_epoch=epoch_index, max_epochs=MAX_EPOCHS, callback_metrics={"val/acc": torch.tensor(accuracy)}
    )


def _train(study: optuna.Study, accuracies: list[float]) -> int | None:
    """Runs the callback over a trial's epochs; returns the epoch it was pruned after, if it was."""
    trial = study.ask()
    callback = PruningCallback(trial, "val/acc")
    for index, accuracy in enumerate(accuracies):
        try:
            callback.on_train_epoch_end(_trainer(index, accuracy), None)  # type: ignore[arg-type]
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return index + 1
    study.tell(trial, accuracies[-1])
    return None


def _study(pruner: dict[str, Any]) -> optuna.Study:
    spec = validate_experiment(tiny_experiment(search__pruner=pruner, trainer={"max_epochs": MAX_EPOCHS}))
    return optuna.create_study(direction="maximize", pruner=make_pruner(spec))


def test_steps_are_epochs_trained() -> None:
    study = _study({"name": "none"})
    pruned_after = _train(study, [0.5, 0.6, 0.7])
    assert pruned_after is None
    assert study.trials[0].intermediate_values == pytest.approx({1: 0.5, 2: 0.6, 3: 0.7})


def test_a_trial_is_never_pruned_after_its_last_epoch() -> None:
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    callback = PruningCallback(trial, "val/acc")
    callback.on_train_epoch_end(_trainer(MAX_EPOCHS - 1, 0.1), None)  # type: ignore[arg-type]
    assert study.trials[0].intermediate_values == {MAX_EPOCHS: pytest.approx(0.1)}
    with pytest.raises(optuna.TrialPruned, match=f"pruned after epoch 1 of {MAX_EPOCHS}"):
        callback.on_train_epoch_end(_trainer(0, 0.1), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("min_resource", "judged_after"), [(1, 1), (2, 2)])
def test_successive_halving_judges_after_min_resource_epochs(min_resource: int, judged_after: int) -> None:
    study = _study({"name": "successive-halving", "min_resource": min_resource, "reduction_factor": 3})
    pruned_after = _train(study, [0.8, 0.85, 0.9, 0.92])
    assert pruned_after is None  # the first trial is the best at every rung
    pruned_after = _train(study, [0.3, 0.35, 0.4, 0.45])
    assert pruned_after == judged_after


def test_successive_halving_second_rung_is_reduction_factor_times_later() -> None:
    study = _study({"name": "successive-halving", "min_resource": 1, "reduction_factor": 3})
    _train(study, [0.5, 0.8, 0.9, 0.92])
    pruned_after = _train(study, [0.6, 0.61, 0.62, 0.63])  # best after epoch 1, behind after epoch 3
    assert pruned_after == 3


def test_median_pruner_leaves_warmup_epochs_alone() -> None:
    study = _study({"name": "median", "n_startup_trials": 1, "n_warmup_steps": 2})
    _train(study, [0.8, 0.85, 0.9, 0.92])
    pruned_after = _train(study, [0.1, 0.1, 0.1, 0.1])
    assert pruned_after == 3
