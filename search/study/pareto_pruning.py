"""Pruning a Pareto study, whose cost objectives are known before a trial trains.

Optuna cannot prune multi-objective studies (`trial.report` is single-objective), but in a study of
accuracy against cost the cost is fixed before the first epoch, so only the accuracy is in doubt.
A trial belongs on the front only if no trial that costs no more has a better final metric. The rule:

    after epoch k (k > n_warmup_steps, not the last epoch), once n_startup_trials trials have
    completed, stop trial T when some other trial P costs no more than T in every cost objective
    and P's metric after epoch k was better than T's by more than `margin`.

That is, T is already dominated at epoch k, and by more than learning curves of one study usually
cross by later (the `margin`, in the metric's units: 0.01 is one point of accuracy). The peers are
every trial that trained epoch k (complete, running, or pruned later). Each trial's metric per epoch
is stored as the user attr `metric_curve`, since Optuna keeps intermediate values for
single-objective studies only; its cost objectives are its `cost/` user attrs, set before training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import pytorch_lightning as pl
from optuna.trial import FrozenTrial, TrialState

from search.experiment.spec import SearchConfig
from search.tracking import vocabulary as v

_PEER_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


@dataclass(frozen=True)
class Peer:
    """What the rule needs of a trial: its number, its cost objectives, its metric per epoch."""

    number: int
    costs: tuple[float, ...]
    curve: tuple[float, ...]  # curve[k - 1] is the metric after epoch k


@dataclass(frozen=True)
class ParetoRule:
    """The rule's settings (`search.pruner` of a Pareto study) and the metric's direction."""

    maximize: bool
    margin: float = 0.01
    n_warmup_steps: int = 1
    n_startup_trials: int = 2

    def dominator(self, trial: Peer, epoch: int, peers: Sequence[Peer]) -> Peer | None:
        """A peer costing no more than `trial` whose metric after `epoch` beat it by more than margin."""
        mine = trial.curve[epoch - 1]
        for peer in peers:
            if peer.number == trial.number or len(peer.curve) < epoch:
                continue
            cheaper = all(theirs <= ours for theirs, ours in zip(peer.costs, trial.costs, strict=True))
            gain = peer.curve[epoch - 1] - mine if self.maximize else mine - peer.curve[epoch - 1]
            if cheaper and gain > self.margin:
                return peer
        return None

    def due(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether a trial is judged after `epoch`: past the warm-up, and not after its last epoch
        (stopping it then would save nothing)."""
        return epoch > self.n_warmup_steps and (max_epochs is None or epoch < max_epochs)

    def judge(self, trial: Peer, peers: Sequence[Peer], completed: int, max_epochs: int | None) -> str | None:
        """Why `trial` should stop after its last epoch so far, or None to go on."""
        epoch = len(trial.curve)
        if not self.due(epoch, max_epochs) or completed < self.n_startup_trials:
            return None
        peer = self.dominator(trial, epoch, peers)
        if peer is None:
            return None
        return (
            f"dominated after epoch {epoch}: trial {peer.number} costs no more and had "
            f"{peer.curve[epoch - 1]:.4f} against {trial.curve[epoch - 1]:.4f}"
        )


def peer_of(trial: FrozenTrial, cost_metrics: Sequence[str]) -> Peer | None:
    """The trial as a peer, or None when it has no curve or lacks a cost (never trained)."""
    attrs = trial.user_attrs
    curve = attrs.get(v.ATTR_CURVE)
    if not curve or any(metric not in attrs for metric in cost_metrics):
        return None
    return Peer(trial.number, tuple(float(attrs[m]) for m in cost_metrics), tuple(curve))


def study_peers(study: optuna.Study, cost_metrics: Sequence[str]) -> tuple[list[Peer], int]:
    """The study's trials that trained at least one epoch, and how many trials completed."""
    trials = study.get_trials(deepcopy=False, states=_PEER_STATES)
    peers = [peer for peer in (peer_of(t, cost_metrics) for t in trials) if peer is not None]
    return peers, sum(t.state == TrialState.COMPLETE for t in trials)


class ParetoPruningCallback(pl.Callback):
    """Stores the monitored metric per epoch as the trial's `metric_curve` and applies the rule
    (none with `pruner: none`: the curve is still stored)."""

    def __init__(
        self,
        trial: optuna.Trial,
        monitor: str,
        costs: Sequence[float],
        cost_metrics: Sequence[str],
        rule: ParetoRule | None,
    ) -> None:
        self.trial = trial
        self.monitor = monitor
        self.costs = tuple(costs)
        self.cost_metrics = list(cost_metrics)
        self.rule = rule
        self.curve: list[float] = []

    def state_dict(self) -> dict[str, Any]:
        return {"curve": list(self.curve)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A resumed trial's curve so far (the retry is a new Optuna trial: it stores it again)."""
        self.curve = [float(value) for value in state_dict.get("curve", [])]
        if self.curve:
            self.trial.set_user_attr(v.ATTR_CURVE, list(self.curve))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        self.curve.append(float(value))
        self.trial.set_user_attr(v.ATTR_CURVE, list(self.curve))
        if self.rule is None or not self.rule.due(len(self.curve), trainer.max_epochs):
            return
        peers, completed = study_peers(self.trial.study, self.cost_metrics)
        me = Peer(self.trial.number, self.costs, tuple(self.curve))
        reason = self.rule.judge(me, peers, completed, trainer.max_epochs)
        if reason is not None:
            raise optuna.TrialPruned(f"pruned: {reason}.")


def pareto_rule(search: SearchConfig) -> ParetoRule | None:
    """The rule of a Pareto study's `search.pruner` (None for `none`)."""
    pruner = search.pruner
    if pruner.name != "pareto":
        return None
    return ParetoRule(
        maximize=search.resolved_direction == "maximize",
        margin=pruner.margin,
        n_warmup_steps=pruner.n_warmup_steps,
        n_startup_trials=pruner.n_startup_trials,
    )
