"""Later members' epochs from the earlier members' measured pace (`tune --budget`'s reproduction).

The budget plans every member's epochs from the trials' speeds, and the members' real speed over
their trials' has differed from run to run by more than its margin (two at once, members kept x0.93
of their trials' speed per image in one hour run and x1.14-1.17 in the next; docs/performance.md).
So once a member has finished, each member started after it gets the epochs that fit before its
deadline at the pace the finished ones kept: each finished member's seconds per training epoch (its
validation included; what follows its training is reserved apart, as the budget's end) over its
trial's seconds per epoch, averaged, times the new member's trial's seconds per epoch, after the
finished members' average start-up (data, network, trainer). Never more than the ceiling: `ceiling`
epochs (those the reproduction asked for before the budget reduced them) at the finished members'
trials' pace, so a network faster per epoch than theirs may train as long as they may, in more epochs
(a one-conv fourth member of an hour run trained its 30 epochs in half its round and left a core
idle for ten minutes), and a slower one still `ceiling` epochs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from optuna.trial import FrozenTrial

from search.study.trial_time import seconds_per_epoch


@dataclass(frozen=True)
class TrainingTime:
    """A member's training as clocked: seconds to its first step, then seconds of `epochs` epochs."""

    startup: float
    seconds: float
    epochs: int


@dataclass(frozen=True)
class MemberPace:
    """A finished member: seconds of its training epochs, epochs trained, its trial's seconds per epoch,
    and its start-up seconds."""

    seconds: float
    epochs: int
    trial_epoch_seconds: float
    startup: float = 0.0

    @property
    def over_trial(self) -> float:
        """The member's seconds per epoch over its trial's."""
        return self.seconds / max(self.epochs, 1) / self.trial_epoch_seconds


def epochs_that_fit(
    paces: Sequence[MemberPace], trial_epoch_seconds: float | None, seconds_left: float, ceiling: int
) -> int | None:
    """Epochs of the next member within `seconds_left`, at least one and at most `ceiling`; None
    (the planned epochs stand) before any member has finished or without its trial's speed."""
    if not paces or trial_epoch_seconds is None or trial_epoch_seconds <= 0:
        return None
    per_epoch = statistics.fmean(pace.over_trial for pace in paces) * trial_epoch_seconds
    training = seconds_left - statistics.fmean(pace.startup for pace in paces)
    most = ceiling_in_time(paces, trial_epoch_seconds, ceiling)
    return max(1, min(most, math.floor(training / per_epoch)))


def ceiling_in_time(paces: Sequence[MemberPace], trial_epoch_seconds: float | None, ceiling: int) -> int:
    """`ceiling` epochs at the finished members' trials' mean seconds per epoch, counted in epochs of a
    trial that took `trial_epoch_seconds` per epoch; never fewer than `ceiling`."""
    if not paces or trial_epoch_seconds is None or trial_epoch_seconds <= 0:
        return ceiling
    reference = statistics.fmean(pace.trial_epoch_seconds for pace in paces)
    return max(ceiling, math.floor(ceiling * reference / trial_epoch_seconds + 1e-9))


@dataclass
class Pacing:
    """The members' paces so far, and the epochs of the next (None: as planned). Inactive without a
    deadline or a ceiling (a plain `reproduce --top-k`)."""

    ceiling: int | None
    default_epochs: int  # a trial's epochs when it reported none
    paces: list[MemberPace] = field(default_factory=list)

    def epochs(self, trial: FrozenTrial, deadline: float | None) -> int | None:
        """Epochs for `trial`'s member, started now and due to stop training at `deadline`."""
        if deadline is None or self.ceiling is None:
            return None
        trial_pace = seconds_per_epoch(trial, self.default_epochs)
        return epochs_that_fit(self.paces, trial_pace, deadline - time.time(), self.ceiling)

    def ceiling_for(self, trial: FrozenTrial) -> int | None:
        """The most epochs `trial`'s member may be lengthened to (None: never lengthened)."""
        if self.ceiling is None:
            return None
        return ceiling_in_time(self.paces, seconds_per_epoch(trial, self.default_epochs), self.ceiling)

    def finished(self, trial: FrozenTrial, training: TrainingTime | None) -> None:
        """A member of `trial` trained as `training` clocked it (None: not clocked, nothing learnt)."""
        trial_pace = seconds_per_epoch(trial, self.default_epochs)
        if trial_pace and training is not None and training.epochs > 0:
            self.paces.append(MemberPace(training.seconds, training.epochs, trial_pace, training.startup))
