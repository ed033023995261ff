"""Deadlines at run time for `tune --budget`: the search's share of the budget, and the reproduction's.

The search's share moves while it runs (each finished trial re-estimates what the reproduction will
need), so it lives in a small JSON file that the `tune` process rewrites and every worker process
reads: `SearchClock`. Wall-clock times (`time.time()`), since several processes compare them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
from optuna.trial import TrialState
from torch.optim.lr_scheduler import OneCycleLR

from lightning_modules.averaging import AveragedWeights

READ_EVERY_SECONDS = 0.5
SEARCH_ENDED = "the search's share of the time budget ran out"


class SearchClock:
    """`claim_until`: no trial starts after it; `search_end`: a trial still training then is pruned."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._times = (float("inf"), float("inf"))
        self._read_at = 0.0

    def set(self, claim_until: float, search_end: float) -> None:
        """Rewrites the file at once (write a sibling, then rename), so a reader never sees half of it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"claim_until": claim_until, "search_end": search_end}))
        os.replace(partial, self.path)
        self._times, self._read_at = (claim_until, search_end), time.monotonic()

    def times(self) -> tuple[float, float]:
        """(claim_until, search_end), read again at most every `READ_EVERY_SECONDS`; an unreadable file
        keeps the last times read."""
        if time.monotonic() - self._read_at >= READ_EVERY_SECONDS:
            self._read_at = time.monotonic()
            try:
                data = json.loads(self.path.read_text())
                self._times = (float(data["claim_until"]), float(data["search_end"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return self._times

    def out_of_time(self) -> bool:
        return time.time() >= self.times()[0]

    def past_end(self) -> bool:
        return time.time() >= self.times()[1]


class SearchEndCallback(pl.Callback):
    """Prunes the trial at the next batch once the search's share has run out: the sampler keeps what
    it reported, and the reproduction's share is not eaten into. Not while the study holds no COMPLETE
    trial: the reproduction needs one, so the first to complete may overrun the search's share."""

    def __init__(self, clock: SearchClock, trial: optuna.Trial) -> None:
        self.clock = clock
        self.trial = trial
        self._result_seen = False
        self._looked_at = 0.0

    def _check(self) -> None:
        if self.clock.past_end() and self._study_has_result():
            raise optuna.TrialPruned(SEARCH_ENDED)

    def _study_has_result(self) -> bool:
        """Whether the study holds a COMPLETE trial; asks the storage at most once a second."""
        if not self._result_seen and time.monotonic() - self._looked_at >= 1.0:
            self._looked_at = time.monotonic()
            complete = self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._result_seen = bool(complete)
        return self._result_seen

    def on_train_batch_end(self, *args: Any) -> None:
        self._check()

    def on_validation_batch_end(self, *args: Any) -> None:
        self._check()


class TrainingDeadline(pl.Callback):
    """Fits training to a wall-clock deadline. After each epoch, at the slower of the mean and the
    last epoch's pace (validation included), a run that no longer fits is shortened to the epochs
    that do, and a one-cycle schedule is re-planned to reach its floor with the new last epoch (cut
    off by the deadline instead, it would stop part-way down at a rate a few times too high). Given a
    `ceiling`, a run that is ahead of its deadline is lengthened the same way, to the epochs that fit
    but at most `ceiling` (the plan is an estimate made before training; without this a member that
    trains faster than planned ends early and its time is lost). At the deadline itself, after the
    current batch Lightning validates the partial epoch and ends `fit`, so the best epoch's weights
    so far are what the caller restores."""

    def __init__(
        self,
        deadline: float,
        clock: Callable[[], float] = time.time,
        *,
        ceiling: int | None = None,
        on_replan: Callable[[int], None] | None = None,  # gets the new number of epochs
    ) -> None:
        self.deadline = deadline
        self.clock = clock
        self.ceiling = ceiling
        self.on_replan = on_replan
        self.stopped_in_epoch: int | None = None
        self.max_epochs: int | None = None
        self.planned_epochs: int | None = None
        self.replanned_to: int | None = None  # the epochs it was re-planned to last, fewer or more
        self.one_cycle_replanned = False
        self._epoch_seconds: list[float] = []
        self._epoch_started = 0.0

    def on_train_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.planned_epochs = trainer.max_epochs
        self._epoch_started = self.clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        now = self.clock()
        self._epoch_seconds.append(now - self._epoch_started)
        self._epoch_started = now
        done = trainer.current_epoch + 1
        planned = int(trainer.max_epochs or done)
        if trainer.should_stop or done >= planned:
            return
        pace = max(sum(self._epoch_seconds) / len(self._epoch_seconds), self._epoch_seconds[-1])
        fitting = done + max(int((self.deadline - now) // pace), 1)
        if fitting < planned:
            self._replan(trainer, done, fitting)
        elif self.ceiling is not None and planned < min(fitting, self.ceiling):
            self._replan(trainer, done, min(fitting, self.ceiling))

    def _replan(self, trainer: pl.Trainer, done: int, epochs: int) -> None:
        trainer.fit_loop.max_epochs = epochs
        self.replanned_to = epochs
        if self.on_replan is not None:
            self.on_replan(epochs)
        steps_left = (epochs - done) * int(trainer.num_training_batches)
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, OneCycleLR) and config.interval == "step":
                end_one_cycle_sooner(config.scheduler, steps_left)
                self.one_cycle_replanned = True
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, AveragedWeights):
                callback.replan(trainer.global_step + steps_left, trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.should_stop or self.clock() < self.deadline:
            return
        trainer.should_stop = True
        self.stopped_in_epoch = trainer.current_epoch + 1
        self.max_epochs = trainer.max_epochs

    def note(self) -> str | None:
        notes = []
        planned = self.planned_epochs or 0
        schedule = ""
        if self.one_cycle_replanned:
            schedule = f"; its one-cycle schedule ends with epoch {self.replanned_to}"
        if self.replanned_to is not None and self.replanned_to > planned:
            notes.append(
                f"training lengthened to {self.replanned_to} epochs from the {self.planned_epochs} "
                "planned, as many as fit before the time budget's deadline at the pace it kept (at most "
                f"{self.ceiling}){schedule}"
            )
        elif self.replanned_to is not None and self.replanned_to < planned:
            notes.append(
                f"training shortened to {self.replanned_to} of {self.planned_epochs} epochs, as many as "
                f"fit before the time budget's deadline at the pace it kept{schedule}"
            )
        if self.stopped_in_epoch is not None:
            notes.append(
                f"training stopped at the time budget's deadline in epoch {self.stopped_in_epoch} of "
                f"{self.max_epochs}; the best epoch's weights so far are kept"
            )
        return "; ".join(notes) + "." if notes else None


def end_one_cycle_sooner(schedule: OneCycleLR, steps_left: int) -> None:
    """Re-plans a one-cycle schedule to end `steps_left` steps from now, sooner or later than planned.
    While it still warms up, both phases change in proportion; once it anneals, it goes on from the
    current rate (and momentum) down to the same floor, only sooner or later, so the rate does not
    jump."""
    phases = schedule._schedule_phases  # torch keeps the phases' end steps here; no public setter
    if len(phases) != 2:  # three_phase: left as planned, the deadline cuts it
        return
    warmup, anneal = phases
    done = int(schedule.last_epoch)
    total = done + max(steps_left, 1)
    if done <= warmup["end_step"]:
        warmup["end_step"] = max(float(done), (warmup["end_step"] + 1) * total / schedule.total_steps - 1)
    else:
        warmup["end_step"] = float(done - 1)
        for group in schedule.optimizer.param_groups:
            group["max_lr"] = group["lr"]
            if schedule.cycle_momentum:
                group["base_momentum"] = group["betas"][0] if schedule.use_beta1 else group["momentum"]
    anneal["end_step"] = float(total - 1)
    schedule.total_steps = total
