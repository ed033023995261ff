"""Show a study's trials: number, state, value, device, duration, MLflow run id, params; and the best.

Examples:
  convtune status experiments/quickstart.yaml
  convtune status experiments/quickstart.yaml --storage postgresql://localhost/optuna
"""

from __future__ import annotations

import argparse

from search.commands import add_experiment, add_study, checked_study

NOTES = ("infeasible_reason", "died", "interrupted", "error")


def configure(parser: argparse.ArgumentParser) -> None:
    add_experiment(parser)
    add_study(parser)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from search.progress import format_params
    from search.spec import load_experiment
    from search.study import best_trial, count_states, find_study, open_storage

    name = checked_study(args)
    spec = load_experiment(args.experiment, args.overrides)
    handle = open_storage(args.storage)
    study = find_study(handle, name or spec.name)
    console = Console()
    if not console.is_terminal:  # piped or logged: no need to fold the table into 80 columns
        console = Console(width=160)
    table = Table(title=f"study {study.study_name} ({handle.url})")
    for column in ("trial", "state", "value", "device", "seconds", "mlflow run", "params"):
        table.add_column(column, overflow="fold")
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration else None
        attrs = trial.user_attrs
        note = next((str(attrs[k]) for k in NOTES if attrs.get(k)), "")
        if "retry_of" in attrs:
            note = f"retry {attrs.get('retry_count', 1)} of trial {attrs['retry_of']}" + (
                f"; {note}" if note else ""
            )
        params = format_params(trial.params)
        table.add_row(
            str(trial.number),
            trial.state.name,
            f"{trial.value:.4f}" if trial.value is not None else "",
            str(trial.user_attrs.get("device", "")),
            f"{duration:.1f}" if duration is not None else "",
            str(trial.user_attrs.get("mlflow_run_id", "")),
            params + (f"  [{note[:100]}]" if note else ""),
        )
    console.print(table)
    running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    for trial in running:
        where = f"{trial.user_attrs.get('host', '?')} pid {trial.user_attrs.get('pid', '?')}"
        console.print(f"trial {trial.number} is running on {trial.user_attrs.get('device', '?')} ({where}).")
    counts = count_states(study)
    console.print(", ".join(f"{n} {state.lower()}" for state, n in counts.items() if n))
    best = best_trial(study)
    if best is None:
        console.print("no completed trial yet.")
    else:
        console.print(
            f"best: trial {best.number} {spec.search.metric}={best.value:.4f} "
            f"(mlflow run {best.user_attrs.get('mlflow_run_id', '?')})"
        )
    return 0
