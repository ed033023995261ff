"""The Pareto pruning rule and its callback, on synthetic trials."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import torch

from search.experiment.spec import validate_experiment
from search.study.pareto_pruning import ParetoPruningCallback, ParetoRule, Peer, pareto_rule, study_peers
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment
from tests.search.study.pareto_trials import pareto_study_of, pareto_trial

RULE = ParetoRule(maximize=True, margin=0.01, n_warmup_steps=1, n_startup_trials=2)


def _peer(number: int, costs: tuple[float, ...], curve: tuple[float, ...]) -> Peer:
    return Peer(number, costs, curve)


def test_a_trial_beaten_at_the_same_epoch_by_a_cheaper_one_is_pruned() -> None:
    trial = _peer(9, (2.0, 500), (0.60, 0.70))
    cheaper = _peer(1, (1.0, 500), (0.65, 0.75))
    reason = RULE.judge(trial, [cheaper], completed=2, max_epochs=5)
    assert reason == "dominated after epoch 2: trial 1 costs no more and had 0.7500 against 0.7000"


@pytest.mark.parametrize(
    ("peer", "completed", "epochs", "max_epochs", "why"),
    [
        (_peer(1, (1.0, 600), (0.65, 0.75)), 2, 2, 5, "costs more in one objective"),
        (_peer(1, (1.0, 500), (0.65, 0.705)), 2, 2, 5, "better by less than the margin"),
        (_peer(1, (1.0, 500), (0.65,)), 2, 2, 5, "has not reached the epoch"),
        (_peer(1, (1.0, 500), (0.9, 0.9)), 1, 2, 5, "too few trials completed"),
        (_peer(1, (1.0, 500), (0.9, 0.9)), 2, 1, 5, "still in the warm-up"),
        (_peer(1, (1.0, 500), (0.9, 0.9)), 2, 2, 2, "its last epoch"),
        (_peer(9, (1.0, 500), (0.9, 0.9)), 2, 2, 5, "itself"),
    ],
)
def test_a_trial_goes_on_when(peer: Peer, completed: int, epochs: int, max_epochs: int, why: str) -> None:
    trial = _peer(9, (2.0, 500), (0.60, 0.70)[:epochs])
    assert RULE.judge(trial, [peer], completed=completed, max_epochs=max_epochs) is None, why


def test_a_minimized_metric_is_beaten_by_a_lower_value() -> None:
    rule = ParetoRule(maximize=False, margin=0.05, n_warmup_steps=0, n_startup_trials=0)
    trial = _peer(3, (1.0,), (0.9,))
    assert rule.judge(trial, [_peer(1, (0.5,), (0.8,))], completed=0, max_epochs=3) is not None
    assert rule.judge(trial, [_peer(1, (0.5,), (0.88,))], completed=0, max_epochs=3) is None


def test_the_experiment_sets_the_rule() -> None:
    raw = tiny_experiment()
    raw["search"] |= {"objectives": [{"metric": "val/loss"}, {"metric": "cost/macs"}], "pruner": {}}
    raw["search"]["pruner"] = {"margin": 0.02, "n_warmup_steps": 0, "n_startup_trials": 3}
    search = validate_experiment(raw).search
    assert pareto_rule(search) == ParetoRule(
        maximize=False, margin=0.02, n_warmup_steps=0, n_startup_trials=3
    )
    raw["search"]["pruner"] = {"name": "none"}
    assert pareto_rule(validate_experiment(raw).search) is None


COSTS = ("cost/latency_ms",)


def test_the_callback_stores_the_curve_and_prunes_a_dominated_trial() -> None:
    study = pareto_study_of(
        pareto_trial([0.95, 1.0], 1.0, [0.80, 0.90, 0.95]),
        pareto_trial([0.96, 3.0], 3.0, [0.82, 0.91, 0.96]),
    )
    trial = study.ask()
    trial.set_user_attr("cost/latency_ms", 2.0)  # as the objective records it before training
    callback = ParetoPruningCallback(trial, "val/acc", (2.0,), COSTS, RULE)
    trainer = SimpleNamespace(callback_metrics={"val/acc": torch.tensor(0.70)}, max_epochs=3)
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]  # epoch 1: the warm-up
    assert study.trials[-1].user_attrs[v.ATTR_CURVE] == pytest.approx([0.70])
    trainer.callback_metrics["val/acc"] = torch.tensor(0.85)
    with pytest.raises(optuna.TrialPruned, match=r"dominated after epoch 2: trial 0 costs no more"):
        callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    peers, completed = study_peers(study, COSTS)
    assert completed == 2 and [p.number for p in peers] == [0, 1, 2]
