"""`convtune`: the only entry point. Each command lives in `search/commands/<name>.py`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from search.errors import ConvtuneError

COMMANDS = ("check", "tune", "status", "reproduce", "evaluate", "predict", "export", "explain", "ui")

DESCRIPTION = """\
Tune convolutional networks with Optuna, track every trial in MLflow, and see what each one learned.

Typical session:
  convtune check experiments/quickstart.yaml          validate, print the space and layer shapes
  convtune tune  experiments/quickstart.yaml          run the study (resumes when rerun)
  convtune status experiments/quickstart.yaml         list trials, states, values, devices
  convtune reproduce experiments/quickstart.yaml      retrain the best trial, test it, register it
  convtune ui                                         compare runs in the MLflow UI

Exit status: 0 success, 2 usage or configuration error, 1 any other error.
"""


def _command_modules() -> dict[str, ModuleType]:
    modules = {}
    for name in COMMANDS:
        module_name = f"search.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            modules[name] = importlib.import_module(module_name)
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="convtune", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = _command_modules()
    for name, module in modules.items():
        doc = (module.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else name
        sub = subparsers.add_parser(
            name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.configure(sub)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except ConvtuneError as error:
        print(f"convtune {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"convtune {args.command}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
