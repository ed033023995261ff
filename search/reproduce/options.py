"""What `convtune reproduce` is asked to do: which trial (or budget), how long, where, registered or not."""

from __future__ import annotations

from dataclasses import dataclass

from search.errors import ConfigError
from search.experiment.budgets import Budget, parse_budget
from search.reproduce.top_trials import Distinct
from search.study.pareto import alias_for
from search.tracking.registry import CHAMPION_ALIAS


@dataclass
class ReproduceOptions:
    trial: int | None = None
    epochs: int | None = None
    study_name: str | None = None
    storage: str | None = None
    accelerator: str | None = None
    register: bool = True
    pick: str | None = None  # a budget, like "cost/latency_ms <= 2": the best trial within it
    deadline: float | None = None  # wall clock (`time.time()`): training stops there (`tune --budget`)
    workers: int = 1  # `--top-k`: members retrained at once, each in its own process
    # `tune --budget`: a member started after another has finished gets the epochs that fit before its
    # deadline at the finished members' pace, up to this many (search.reproduce.pace)
    epoch_ceiling: int | None = None
    # `--top-k`: what chooses the ensemble, "accuracy" or "nll" (None: the experiment's reproduce.select_by)
    select_by: str | None = None
    greedy_margin: float | None = None  # `--top-k`: None: the experiment's reproduce.greedy_margin
    # `--top-k`: "params" or "architecture" (None: the experiment's reproduce.distinct)
    distinct: Distinct | None = None
    teacher: str | None = None  # `--teacher`: a model to distil from (None: reproduce.teacher's)
    teacher_weight: float | None = None  # `--teacher-weight` (None: the experiment's, else 0.5)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, but got --workers {self.workers}.")
        if self.greedy_margin is not None and not self.greedy_margin >= 0:
            raise ConfigError(
                f"--greedy-margin must be at least 0, but got --greedy-margin {self.greedy_margin}."
            )
        if self.teacher_weight is not None and not 0 <= self.teacher_weight <= 1:
            raise ConfigError(
                f"--teacher-weight must be in [0, 1], but got --teacher-weight {self.teacher_weight}."
            )

    def budget(self) -> Budget | None:
        """`pick` parsed (a `ConfigError` when malformed, or given with `trial`)."""
        if self.pick is None:
            return None
        if self.trial is not None:
            raise ConfigError("give --trial N or --pick BUDGET, not both.")
        try:
            return parse_budget(self.pick)
        except ValueError as error:
            raise ConfigError(f"--pick: {error}.") from None

    def alias(self) -> str:
        """`champion`, or for --pick an alias that says the budget (`latency-2ms`)."""
        budget = self.budget()
        return CHAMPION_ALIAS if budget is None else alias_for(budget)
