"""One module per `convtune` command: `configure(parser)` adds its flags, `run(args)` does the work.

`convtune --help` imports every command module to list them, so a command imports what it uses
inside `run` (and the functions it calls): torch, Lightning, MLflow, even rich or pydantic would
slow every `--help` and every other command (issue 21; tests/e2e/test_startup.py).
"""

from __future__ import annotations

import argparse


def add_experiment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment", metavar="EXP", help="experiment YAML file, e.g. experiments/quickstart.yaml"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any field, e.g. --set optim.lr=0.01 --set model.channels=[16,32] (repeatable); "
        "a searched field set this way is fixed: no longer searched, and in reproduce it wins over the "
        "trial's value",
    )


def add_study(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", metavar="NAME", help="study name (default: the experiment's name)")
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage: sqlite:///f.db, postgresql://user@host/db, or a journal file path "
        "(default: .convtune/optuna.journal, safe for several workers on one machine)",
    )


def checked_study(args: argparse.Namespace) -> str | None:
    """`--study` and `--storage`, checked before anything is read or written (a `ConfigError` if not)."""
    # lazy: these two add ~25 ms to the ~60 ms of `convtune --help`, which imports this module
    from search.experiment.names import check_name
    from search.study.storage_url import check_storage

    check_storage(args.storage)
    return None if args.study is None else check_name(args.study, "--study")
