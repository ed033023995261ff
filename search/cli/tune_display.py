"""What `convtune tune` shows: the `TuneObserver` (`search.study.observer`) of the terminal.

The checks' notes, a live panel while the trials run (one line per worker for a pool), and the
best trials with a link to compare them at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial
from rich.console import Console
from rich.progress import TaskID

from search.cli.progress import StudyProgress, trials_table
from search.study.observer import StudyEnd, StudyWatch, TrialsWatch
from search.tracking import vocabulary as v


class TuneDisplay:
    """Prints to `console` (stderr by default) what `tune` tells it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def study_ready(self, notes: Sequence[str], warm_start: str | None) -> None:
        for note in notes:
            self.console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        if warm_start is not None:
            self.console.print(warm_start, highlight=False)

    @contextlib.contextmanager
    def watch_trials(self, study: optuna.Study, n_trials: int, metric: str) -> Iterator[TrialsWatch]:
        with StudyProgress(study.study_name, n_trials, metric, self.console) as progress:
            yield progress

    @contextlib.contextmanager
    def watch_workers(
        self, study: optuna.Study, n_trials: int, metric: str, workers: Sequence[str], epochs: int
    ) -> Iterator[StudyWatch]:
        with StudyProgress(study.study_name, n_trials, metric, self.console) as progress:
            yield WorkersView(progress, workers, epochs, metric)

    def workers_crashed(self, crashed: Sequence[str], log_tail: str) -> None:
        for crash in crashed:
            message = f"worker {crash} ended abnormally; its trial was failed and queued for retry."
            self.console.print(f"[yellow]{message}[/yellow]")
        if log_tail:
            self.console.print(log_tail, markup=False, highlight=False)

    def study_finished(self, end: StudyEnd) -> None:
        study = end.study
        self.console.print(trials_table(study, title=f"study {study.study_name}: top trials"))
        self.console.print(compare_line(end), soft_wrap=True)
        if end.stopped_by == "failures":
            self.console.print(f"[red]stopped after {end.failed} failed trials; see `convtune status`.[/red]")


def compare_line(end: StudyEnd) -> str:
    """Where to look at the study: the team's server itself, or `convtune ui` on this machine."""
    if end.on_server:
        return f"compare the runs: open {end.runs_link}"
    return f"compare the runs: [bold]convtune ui[/bold], then open {end.runs_link}"


class WorkersView:
    """The parent's live panel: the study summary and one line per worker with its running trial."""

    def __init__(self, progress: StudyProgress, workers: Sequence[str], epochs: int, metric: str) -> None:
        self.progress = progress
        self.epochs = epochs
        self.metric = metric
        self.tasks = {
            label: progress.bars.add_task(f"{label:>8}", total=epochs, status="starting") for label in workers
        }
        self.showing: dict[str, int | None] = {}  # each worker's trial on its line (None: waiting)

    def update_study(self, study: optuna.Study, _trial: FrozenTrial | None = None) -> None:
        self.progress.update_study(study)
        running = {
            str(t.user_attrs.get(v.ATTR_WORKER)): t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        }
        for label, task in self.tasks.items():
            trial = running.get(label)
            self._restart_clock(label, task, trial.number if trial is not None else None)
            if trial is None:
                self.progress.bars.update(task, completed=0, status="waiting")
                continue
            curve = trial.user_attrs.get(v.ATTR_CURVE, [])  # a Pareto trial reports no intermediate values
            steps = trial.intermediate_values or dict(enumerate(curve, start=1))
            last = f" {self.metric} {steps[max(steps)]:.4f}" if steps else ""
            self.progress.bars.update(
                task,
                completed=len(steps),
                status=f"trial {trial.number} epoch {len(steps)}/{self.epochs}{last}",
            )

    def _restart_clock(self, label: str, task: TaskID, number: int | None) -> None:
        """A worker's time is that of what it does now: its trial, or its wait for one (rich's elapsed
        time would otherwise run from the panel's start, and freeze once a trial reached the last epoch)."""
        if label in self.showing and self.showing[label] == number:
            return
        self.showing[label] = number
        self.progress.bars.reset(task, total=self.epochs, completed=0)
