"""The Pareto pruning rule, picking from a front and the sampler's view of budgets, on synthetic trials."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search.errors import ConvtuneError
from search.experiment.budgets import Budget, parse_budget
from search.experiment.spec import validate_experiment
from search.study.pareto import front, front_markdown, pick
from search.study.pareto_pruning import ParetoPruningCallback, ParetoRule, Peer, pareto_rule, study_peers
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment

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


def _trial(values: list[float] | None, latency: float, curve: list[float], **attrs: Any) -> Any:
    state = TrialState.COMPLETE if values is not None else TrialState.PRUNED
    return optuna.trial.create_trial(
        state=state,
        values=values,
        user_attrs={"cost/latency_ms": latency, v.ATTR_CURVE: curve, v.ATTR_RUN_ID: "run", **attrs},
    )


def _pareto_study(*trials: Any) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials(trials)
    return study


def test_the_callback_stores_the_curve_and_prunes_a_dominated_trial() -> None:
    study = _pareto_study(
        _trial([0.95, 1.0], 1.0, [0.80, 0.90, 0.95]),
        _trial([0.96, 3.0], 3.0, [0.82, 0.91, 0.96]),
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


# --- picking -------------------------------------------------------------------------------------

KNOWN = (
    _trial([0.90, 1.0], 1.0, [0.9]),  # front
    _trial([0.93, 1.8], 1.8, [0.93]),  # front
    _trial([0.95, 2.5], 2.5, [0.95]),  # front
    _trial([0.91, 2.0], 2.0, [0.91]),  # dominated by 1
    _trial(None, 0.5, [0.5], over_budget="over"),  # pruned: never picked
)


@pytest.mark.parametrize(
    ("budget", "number"),
    [("cost/latency_ms <= 2", 1), ("cost/latency_ms < 1.8", 0), ("cost/latency_ms <= 10", 2)],
)
def test_pick_takes_the_most_accurate_front_trial_within_the_budget(budget: str, number: int) -> None:
    study = _pareto_study(*KNOWN)
    assert [t.number for t in front(study)] == [0, 1, 2]
    assert pick(study, parse_budget(budget)).number == number


def test_pick_says_when_nothing_fits() -> None:
    with pytest.raises(
        ConvtuneError, match=r"fits cost/latency_ms <= 0.5 \(the cheapest is trial 0 with 1\)"
    ):
        pick(_pareto_study(*KNOWN), Budget("cost/latency_ms", 0.5))


def test_the_front_table_lists_the_front_cheapest_first() -> None:
    table = front_markdown(_pareto_study(*KNOWN))
    rows = [line for line in table.splitlines() if line.startswith("| trial-")]
    assert [row.split(" | ")[0] for row in rows] == ["| trial-0000", "| trial-0001", "| trial-0002"]
    assert "| 0.9300 |" in rows[1] and "| 1.8 |" in rows[1]


# --- the sampler learns where the budget line is -----------------------------------------------------

WIDTHS = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128]
LIMIT = Budget("cost/params", 40.0)  # 6 of the 10 widths fit
SPACE = {"width": CategoricalDistribution(WIDTHS), "lr": FloatDistribution(1e-3, 1e-1, log=True)}


def _within_budget_share(sampler: optuna.samplers.BaseSampler, trials: int = 80, last: int = 40) -> float:
    """A toy Pareto search (accuracy against width) where widths over 32 are over budget: pruned
    before 'training', with the constraint value the objective records."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    fitted = []
    for _ in range(trials):
        trial = study.ask(SPACE)
        width, lr = trial.params["width"], trial.params["lr"]
        trial.set_constraint(LIMIT.metric, LIMIT.violation(width))
        fitted.append(LIMIT.fits(width))
        if LIMIT.fits(width):
            study.tell(trial, [width / 100 - abs(math.log10(lr / 0.01)) / 10, width])
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return sum(fitted[-last:]) / last


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
        lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=10),
    ],
    ids=["tpe", "nsga2"],
)
def test_the_sampler_learns_the_budget_line_from_trials_it_never_trained(make: Any) -> None:
    seeds = range(3)
    learned = [_within_budget_share(make(seed)) for seed in seeds]
    random = [_within_budget_share(optuna.samplers.RandomSampler(seed=seed)) for seed in seeds]
    assert sum(random) / 3 <= 0.65
    assert sum(learned) / 3 >= 0.74
