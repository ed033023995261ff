"""What the terminal shows while a study runs, and the table at the end.

No Lightning here (`convtune status` formats with it): the Lightning callback that feeds the panel
is `search.study.trial_progress.TrialProgressCallback`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from search.experiment.budgets import format_cost
from search.study.pareto import maximizes, metric_value
from search.study.study import best_trial, count_states, own_trials
from search.tracking import vocabulary as v


class StudyProgress:
    """A live panel: trials done/pruned/failed, the best so far, and the running trial's epochs."""

    def __init__(self, study_name: str, n_trials: int, metric: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.study_name = study_name
        self.metric = metric
        self.n_trials = n_trials
        self.summary = Text()
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.live = Live(
            Group(self.summary, self.bars), console=self.console, refresh_per_second=4, transient=False
        )
        self.task: TaskID | None = None

    def __enter__(self) -> StudyProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)  # type: ignore[arg-type]

    def update_study(self, study: optuna.Study, _trial: FrozenTrial | None = None) -> None:
        counts = count_states(study)
        best = best_trial(study)
        done = counts["COMPLETE"] + counts["PRUNED"]
        best_text = (
            f"best {self.metric} {best.values[0]:.4f} (trial {best.number})" if best else "no result yet"
        )
        self.summary.plain = (
            f"study {self.study_name}: {done}/{self.n_trials} finished · {counts['COMPLETE']} complete · "
            f"{counts['PRUNED']} pruned · {counts['FAIL']} failed · {counts['RUNNING']} running · {best_text}"
        )

    def start_trial(self, number: int, epochs: int, batches: int) -> None:
        if self.task is not None:
            self.bars.remove_task(self.task)
        self.task = self.bars.add_task(f"trial {number}", total=epochs * max(batches, 1), status="")

    def advance(self, status: str = "") -> None:
        if self.task is not None:
            self.bars.update(self.task, advance=1, status=status)

    def epoch_done(self, status: str) -> None:
        if self.task is not None:
            self.bars.update(self.task, status=status)


def format_params(params: dict[str, Any]) -> str:
    """`key=value` pairs on one line, floats to 3 significant digits."""
    parts = []
    for key, value in params.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def params_cell(trial: FrozenTrial, note: str, width: int) -> Text:
    """A trial's params and, in brackets, why it stopped; plain text, so that rich does not read a
    note such as `[cost/params = 21,594 is over ...]` as markup and drop it."""
    if len(note) > width:
        note = note[: width - 1] + "…"
    return Text(format_params(trial.params) + (f"  [{note}]" if note else ""))


def format_values(trial: FrozenTrial) -> str:
    """The metric to 4 decimals, then a Pareto trial's costs (`0.9712 / 2,130 / 0.31`)."""
    if not trial.values:
        return ""
    return " / ".join([f"{trial.values[0]:.4f}", *(format_cost(value) for value in trial.values[1:])])


def trials_table(study: optuna.Study, *, limit: int | None = 10, title: str | None = None) -> Table:
    """The best trials first (then pruned and failed ones), with their params."""
    trials: Sequence[FrozenTrial] = own_trials(study)
    maximize = maximizes(study)
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.FAIL: 3}

    def rank(trial: FrozenTrial) -> tuple[int, float]:
        value = metric_value(trial)
        if value is None:
            return order.get(trial.state, 4), 0.0
        return order.get(trial.state, 4), -value if maximize else value

    table = Table(title=title, show_lines=False)
    for column in ("trial", "state", "value", "device", "seconds", "params"):
        table.add_column(column, overflow="fold")
    for trial in sorted(trials, key=rank)[:limit]:
        duration = trial.duration.total_seconds() if trial.duration else None
        table.add_row(
            str(trial.number),
            trial.state.name,
            format_values(trial),
            str(trial.user_attrs.get(v.ATTR_DEVICE, "")),
            f"{duration:.1f}" if duration is not None else "",
            params_cell(trial, trial_note(trial), 80),
        )
    return table


def trial_note(trial: FrozenTrial) -> str:
    """Why a trial ended as it did (infeasible, over budget, died, interrupted, failed), and whether
    it retries another: the same words in `tune`'s table and `convtune status`."""
    attrs = trial.user_attrs
    note = next((str(attrs[key]) for key in v.TRIAL_NOTES if attrs.get(key)), "")
    if v.ATTR_RETRY_OF not in attrs:
        return note
    retry = f"retry {attrs.get(v.ATTR_RETRY_COUNT, 1)} of trial {attrs[v.ATTR_RETRY_OF]}"
    return f"{retry}; {note}" if note else retry
