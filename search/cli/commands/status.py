"""Show a study's trials: number, state, value, device, duration, MLflow run id, params; and the best.

In a Pareto study (search.objectives) the value column holds the metric and then each cost, and
the front column marks the trials on the Pareto front. Retries waiting to continue a dead trial's
checkpoint are listed with the epoch they resume after (checkpoints on this machine).

Examples:
  convtune status experiments/quickstart.yaml
  convtune status experiments/quickstart.yaml --storage postgresql://localhost/optuna
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from search.cli.commands import add_experiment, add_study, checked_study

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def configure(parser: argparse.ArgumentParser) -> None:
    add_experiment(parser)
    add_study(parser)


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from rich.console import Console
    from rich.table import Table

    from search.cli.progress import format_values, params_cell, trial_note
    from search.experiment.spec import load_experiment
    from search.parallel.checkpoints import CheckpointStore, resumable
    from search.study.pareto import front, is_pareto
    from search.study.storage import open_storage
    from search.study.study import best_trial, count_states, find_study, own_trials
    from search.tracking import vocabulary as v

    name = checked_study(args)
    spec = load_experiment(args.experiment, args.overrides)
    handle = open_storage(args.storage)
    study = find_study(handle, name or spec.name)
    console = Console()
    if not console.is_terminal:  # piped or logged: no need to fold the table into 80 columns
        console = Console(width=160)
    table = Table(title=f"study {study.study_name} ({handle.url})")
    pareto = is_pareto(study)
    on_front = {trial.number for trial in front(study)}
    for column in ("trial", "state", "value", *(["front"] if pareto else []), "device", "seconds"):
        table.add_column(column, overflow="fold")
    for column in ("mlflow run", "params"):
        table.add_column(column, overflow="fold")
    trials = own_trials(study)
    for trial in trials:
        duration = trial.duration.total_seconds() if trial.duration else None
        attrs = trial.user_attrs
        table.add_row(
            str(trial.number),
            trial.state.name,
            format_values(trial),
            *(["*" if trial.number in on_front else ""] if pareto else []),
            str(attrs.get(v.ATTR_DEVICE, "")),
            f"{duration:.1f}" if duration is not None else "",
            str(attrs.get(v.ATTR_RUN_ID, "")),
            params_cell(trial, trial_note(trial), 240),
        )
    console.print(table)
    running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    for trial in running:
        attrs = trial.user_attrs
        where = f"{attrs.get(v.ATTR_HOST, '?')} pid {attrs.get(v.ATTR_PID, '?')}"
        console.print(f"trial {trial.number} is running on {attrs.get(v.ATTR_DEVICE, '?')} ({where}).")
    for waiting in resumable(study, CheckpointStore.for_study(study.study_name, None)):
        console.print(
            f"trial {waiting.trial} (retry of trial {waiting.from_trial}) resumes after epoch "
            f"{waiting.epochs} of {spec.trainer.max_epochs} from {waiting.path}.",
            highlight=False,
        )
    warm = study.user_attrs.get(v.STUDY_ATTR_WARM_START)
    if isinstance(warm, dict):
        console.print(
            f"warm-started from study {warm.get('study')}: {warm.get('added')} of its trials are priors "
            "(not listed).",
            highlight=False,
        )
    counts = count_states(study)
    console.print(
        ", ".join(f"{n} {state.lower()}" for state, n in counts.items() if n) + untrained(trials),
        highlight=False,
    )
    best = best_trial(study)
    if best is None:
        console.print("no completed trial yet.")
    else:
        console.print(
            f"best: trial {best.number} {spec.search.metric}={best.values[0]:.4f} "
            f"(mlflow run {best.user_attrs.get(v.ATTR_RUN_ID, '?')})"
        )
    if on_front:
        console.print(
            f"Pareto front ({spec.search.metric} against {', '.join(spec.search.cost_objectives)}; "
            f"marked *): trials {', '.join(map(str, sorted(on_front)))}; reproduce one within a budget with "
            f"`convtune reproduce {args.experiment} --pick '{spec.search.cost_objectives[0]} <= N'`.",
            highlight=False,
        )
    return 0


def untrained(trials: Sequence[FrozenTrial]) -> str:
    """` (N over budget, M infeasible: never trained)` for the pruned trials that never trained."""
    from search.tracking import vocabulary as v

    kinds = {v.ATTR_OVER_BUDGET: "over budget", v.ATTR_INFEASIBLE: "infeasible"}
    counts = {kind: sum(1 for t in trials if t.user_attrs.get(attr)) for attr, kind in kinds.items()}
    parts = [f"{n} {kind}" for kind, n in counts.items() if n]
    return f" ({', '.join(parts)}: never trained)" if parts else ""
