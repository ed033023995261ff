"""`convtune tune --budget`: the search's hold on the budget, and the reproduction planned after it.

`BudgetedSearch` is the runner's `SearchLimit`: when the study is ready it plans the split (what the
reproduction will need is reserved, the search gets the rest), after every finished trial it
re-estimates the reproduction from the trials' measured speed and moves the search's end
(`search.time_budget.deadlines.SearchClock`, read by every worker), and at the end `reproduction_plan`
fits the
reproduction into what is left. The arithmetic is `search.time_budget.split`'s.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytorch_lightning as pl
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from search.errors import ConvtuneError
from search.experiment.spec import ExperimentSpec
from search.reproduce.options import ReproduceOptions
from search.reproduce.top_trials import top_trials
from search.study.trial_time import trial_epochs, trial_seconds
from search.time_budget import split as tb
from search.time_budget.deadlines import SearchClock, SearchEndCallback
from search.tracking import vocabulary as v

if TYPE_CHECKING:
    from search.parallel.plan import WorkerSlot
    from search.study.prepare import PreparedStudy
    from search.tracking.tracker import Tracker

CLOCK_FOLDER = Path(".convtune/budget")
REPLAN_SHIFT = 0.05  # the plan is printed again when the reserve moves by this share of the budget


@dataclass
class BudgetedSearch:
    """The search's share of `budget` seconds counted from `started` (`time.time()`)."""

    budget: float
    started: float
    spec: ExperimentSpec  # the search's experiment
    reproduction: ExperimentSpec  # the experiment as the reproduction trains it (reproduce.set applied)
    console: Console
    clock_path: str = ""
    clock: SearchClock | None = None
    workload: tb.Workload | None = None
    speedup: tb.Speedup = 1.0
    trial_images: int = 0
    plan: tb.Fit | None = None
    tracker: Tracker | None = None
    parent_run_id: str = ""
    study: optuna.Study | None = None
    planned: list[str] = field(default_factory=list)  # the plan lines printed
    planned_reserve: float = 0.0  # the reproduction's reserve in the last plan printed
    planned_members: int = 0  # and its number of members
    _seen: int = -1
    _measured: bool = False
    notes: list[str] = field(default_factory=list)

    def begin(self, prepared: PreparedStudy, slots: list[WorkerSlot]) -> None:
        self.study, self.tracker, self.parent_run_id = (
            prepared.study,
            prepared.tracker,
            prepared.parent_run_id,
        )
        self.trial_images = prepared.checked.train_size
        workload = reproduction_workload(self.spec, self.reproduction, self.trial_images)
        self.workload = replace(workload, at_once=members_at_once(slots))
        self.speedup = reproduction_speedup(slots)
        path = CLOCK_FOLDER / f"{prepared.study.study_name}.json"
        self.clock_path = str(path.resolve())
        self.clock = SearchClock(self.clock_path)
        self._replan(prepared.study, announce=True)

    def observe(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        """Re-plans when a trial has finished since the last look (cheap to call every second)."""
        finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        if finished != self._seen:
            self._seen = finished
            self._replan(study)

    def out_of_time(self) -> bool:
        return self.clock is not None and self.clock.out_of_time()

    def trial_callback(self, trial: optuna.Trial) -> pl.Callback:
        assert self.clock is not None, "begin() first"
        return SearchEndCallback(self.clock, trial)

    def _replan(self, study: optuna.Study, *, announce: bool = False) -> None:
        assert self.workload is not None and self.clock is not None
        measured = measure(study, self.workload.members, self.trial_images, self.spec)
        self.plan = tb.planned(self.workload, measured.speeds, measured.completed, self.budget, self.speedup)
        reserve, typical = self.plan.estimate.reserve, measured.typical_seconds
        self.clock.set(*tb.search_times(self.started, self.budget, reserve, typical))
        first_measure = self.plan.estimate.img_s is not None and not self._measured
        self._measured = self._measured or first_measure
        if announce or first_measure or (self._measured and self._moved()):
            line = tb.split(self.budget, 0.0, self.plan.estimate.reserve).describe(self.plan.estimate)
            self.planned.append(line)
            self.planned_reserve = self.plan.estimate.reserve
            self.planned_members = self.plan.estimate.workload.members
            prefix = "" if announce else f"re-estimated from {measured.completed} complete trials: "
            self.console.print(f"{prefix}{line}", highlight=False, soft_wrap=True)
            if self.plan.reduced and not nothing_fits(self.plan.estimate, self.deadline - time.time()):
                self.say(f"{self.plan.reduced}.")  # (when nothing fits, the reproduction's plan says so)

    def _moved(self) -> bool:
        """Whether the plan moved enough since it was last printed to be printed again: a reserve
        `REPLAN_SHIFT` of the budget away, or another number of members (an epoch more or less as
        trials finish is not news)."""
        assert self.plan is not None
        estimate = self.plan.estimate
        shifted = abs(estimate.reserve - self.planned_reserve) >= REPLAN_SHIFT * self.budget
        return shifted or estimate.workload.members != self.planned_members

    def say(self, note: str) -> None:
        self.notes.append(note)
        self.console.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Removes the clock's file (the workers are gone)."""
        if self.clock is not None:
            self.clock.path.unlink(missing_ok=True)

    @property
    def deadline(self) -> float:
        return self.started + self.budget


@dataclass(frozen=True)
class Measured:
    speeds: list[tb.Speed]  # the current best distinct COMPLETE trials, best first (at most K)
    completed: int
    typical_seconds: float  # the median COMPLETE trial's wall time (0 before any)


def measure(study: optuna.Study, members: int, images: int, spec: ExperimentSpec) -> Measured:
    """The speed of the trials a reproduction would retrain now (those `spec.reproduce` picks), and how
    long a whole trial takes."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    durations = [seconds for t in complete if (seconds := trial_seconds(t)) is not None]
    if not complete:
        return Measured([], 0, 0.0)
    best, _ = top_trials(study, members, spec.reproduce.distinct)
    speeds = [
        tb.Speed(seconds, trial_epochs(t, spec.trainer.max_epochs), images)
        for t in best
        if (seconds := trial_seconds(t)) is not None
    ]
    return Measured(speeds, len(complete), statistics.median(durations) if durations else 0.0)


def reproduction_workload(
    spec: ExperimentSpec, reproduction: ExperimentSpec, trial_images: int
) -> tb.Workload:
    """Epochs, training images, members and test-time views of the reproduction (`reproduce:` section
    applied)."""
    section = spec.reproduce
    epochs = section.epochs or reproduction.trainer.max_epochs
    images = round(trial_images * reproduction.data.train_fraction / spec.data.train_fraction)
    views = 1 + len(reproduction.evaluate.tta)
    return tb.Workload(epochs=epochs, images=max(images, 1), members=section.top_k or 1, views=views)


def reproduction_speedup(slots: list[WorkerSlot]) -> tb.Speedup:
    """On the CPU, the threads of a trial (its share of a pool's, or all) against all of them, which
    set a member's speed-up over its trial; elsewhere 1 (not measured)."""
    if not slots or slots[0].kind != "cpu":
        return 1.0
    total = torch.get_num_threads()
    return tb.Threads(trial=slots[0].threads or total, total=total)


def members_at_once(slots: list[WorkerSlot]) -> int:
    """A CPU pool's workers each retrain a member at once, a thread share each (x1.6 over one after
    another on 2 cores, docs/performance.md); elsewhere the members train one after another."""
    return len(slots) if len(slots) > 1 and slots[0].kind == "cpu" else 1


@dataclass(frozen=True)
class ReproductionPlan:
    options: ReproduceOptions
    top_k: int
    estimate: tb.Estimate | None


def reproduction_plan(limit: BudgetedSearch, study: optuna.Study, storage: str | None) -> ReproductionPlan:
    """After the search: the reproduction fitted into what is left of the budget (reduced if needed,
    with a note), its training stopping before the budget's end by what is estimated to follow it: the
    last round's members' validation and test passes, then the ensemble's choice, test and registration."""
    workload = limit.workload
    if workload is None:
        raise ConvtuneError("the time budget was never planned: the search did not start.")
    left = limit.deadline - time.time()
    measured = measure(study, workload.members, limit.trial_images, limit.spec)
    fitted = tb.fit(workload, measured.speeds, left, limit.speedup)
    if fitted is not None and nothing_fits(fitted.estimate, left):
        raise ConvtuneError(
            f"the --budget left {tb.format_duration(max(left, 0.0))} after the search, less than the "
            f"smallest reproduction (one member of one epoch: ~{tb.format_duration(fitted.estimate.reserve)} "
            f"at the trials' pace), so nothing was reproduced; give a larger --budget (the study keeps "
            f"its {measured.completed} complete trials), or run `convtune reproduce` without one."
        )
    if fitted is not None and fitted.reduced:
        limit.say(f"{fitted.reduced}.")
    chosen = fitted.estimate.workload if fitted is not None else workload
    default_epochs = limit.reproduction.trainer.max_epochs
    epochs = chosen.epochs if limit.spec.reproduce.epochs or chosen.epochs != default_epochs else None
    options = ReproduceOptions(
        epochs=epochs,
        study_name=study.study_name,
        storage=storage,
        deadline=limit.deadline - (fitted.estimate.finish if fitted is not None else tb.TAIL_SECONDS),
        workers=chosen.parallel,
        epoch_ceiling=workload.epochs,  # later rounds may take back the epochs the fit took away
    )
    return ReproductionPlan(options, chosen.members, fitted.estimate if fitted else None)


def nothing_fits(estimate: tb.Estimate, available: float) -> bool:
    """Whether even the smallest reproduction (`tb.fit`'s last resort) needs more than `available`."""
    smallest = estimate.workload.members == 1 and estimate.workload.epochs == 1
    return smallest and estimate.reserve > available


def finish(limit: BudgetedSearch, search_done: float, plan: ReproductionPlan) -> str:
    """The actual split, recorded on the study's run (tags: a rerun of the study may plan anew) and
    returned as one line."""
    ended = time.time()
    search, reproduce, total = search_done - limit.started, ended - search_done, ended - limit.started
    within = limit.budget - total
    verdict = (
        f"{tb.format_duration(within)} left" if within >= 0 else f"over by {tb.format_duration(-within)}"
    )
    line = (
        f"budget {tb.format_duration(limit.budget)} used: search {tb.format_duration(search)}, reproduce "
        f"{tb.format_duration(reproduce)}, total {tb.format_duration(total)} ({verdict})"
    )
    if limit.tracker is not None:
        stopped_by = limit.tracker.run_tag(limit.parent_run_id, v.TAG_STATUS) or ""
        tags = budget_tags(limit, plan, stopped_by, (search, reproduce, total))
        limit.tracker.set_tags(limit.parent_run_id, tags)
    return line


def budget_tags(
    limit: BudgetedSearch, plan: ReproductionPlan, stopped_by: str, actual: tuple[float, float, float]
) -> dict[str, str]:
    reserve = limit.planned_reserve
    tags = {
        v.TAG_BUDGET_SECONDS: f"{limit.budget:.0f}",
        v.TAG_BUDGET_PLAN: " | ".join(limit.planned),
        v.TAG_BUDGET_SEARCH_PLANNED: f"{max(0.0, limit.budget - reserve):.0f}",
        v.TAG_BUDGET_REPRODUCE_PLANNED: f"{reserve:.0f}",
        v.TAG_BUDGET_SEARCH_ACTUAL: f"{actual[0]:.1f}",
        v.TAG_BUDGET_REPRODUCE_ACTUAL: f"{actual[1]:.1f}",
        v.TAG_BUDGET_TOTAL_ACTUAL: f"{actual[2]:.1f}",
        v.TAG_BUDGET_SEARCH_STOPPED: stopped_by,
        v.TAG_BUDGET_REPRODUCTION: reproduction_described(plan),
    }
    if limit.notes:
        tags[v.TAG_BUDGET_NOTES] = " | ".join(limit.notes)[:5000]
    return tags


def reproduction_described(plan: ReproductionPlan) -> str:
    if plan.estimate is None:
        return f"top_k={plan.top_k}, epochs={plan.options.epochs or 'the trial'}'s"
    return plan.estimate.describe()
