"""`convtune`: the only entry point. Each command lives in `search/cli/commands/<name>.py`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from search.cli.command_log import CommandLog
from search.errors import ConvtuneError, first_line
from search.parallel import open_work

COMMANDS = ("check", "tune", "status", "reproduce", "evaluate", "predict", "export", "explain", "ui")

DESCRIPTION = """\
Tune convolutional networks with Optuna, track every trial in MLflow, and see what each one learned.

Typical session:
  convtune check experiments/quickstart.yaml          validate, print the space and layer shapes
  convtune tune  experiments/quickstart.yaml          run the study (resumes when rerun)
  convtune status experiments/quickstart.yaml         list trials, states, values, devices
  convtune reproduce experiments/quickstart.yaml      retrain the best trial, test it, register it
  convtune ui                                         compare runs in the MLflow UI

Every error is one line. An unexpected one also leaves its traceback in .convtune/logs/ (--debug
prints it); library warnings go there too (--verbose shows them).

Exit status: 0 success, 2 usage or configuration error, 1 any other error, 130 interrupted (Ctrl-C).
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too (argparse prints the whole usage first), exit status 2."""

    def error(self, message: str) -> NoReturn:
        _say(f"{self.prog}: error: {message}; see {self.prog} --help.")
        sys.exit(2)


def _command_modules() -> dict[str, ModuleType]:
    modules = {}
    for name in COMMANDS:
        module_name = f"search.cli.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            modules[name] = importlib.import_module(module_name)
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = _Parser(
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
        sub.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
        sub.add_argument(
            "--verbose",
            action="store_true",
            help="show library warnings and tips (always in .convtune/logs/)",
        )
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    with CommandLog(args.command, verbose=args.verbose) as log:
        return _run(modules[args.command], args, log)


def _run(module: ModuleType, args: argparse.Namespace, log: CommandLog) -> int:
    """The safety net: whatever escapes the command is one line, and nothing it opened stays RUNNING."""
    prefix = f"convtune {args.command}"
    try:
        return int(module.run(args) or 0)
    except ConvtuneError as error:
        open_work.close_all(f"{prefix} stopped: {error}")
        if args.debug:
            traceback.print_exc()
        _say(f"{prefix}: error: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        open_work.close_all(f"{prefix} was interrupted (Ctrl-C)")
        _say(f"{prefix}: interrupted; rerun the same command to resume.")
        return 130
    except SystemExit:
        open_work.close_all(f"{prefix} exited")
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {first_line(error, 300, blank='(no message)')}"
        where = log.record_crash(prefix, error)
        open_work.close_all(f"{prefix} crashed: {reason}")
        if args.debug:
            traceback.print_exception(error)
        found = f"the full traceback is in {where}" if where else "the traceback could not be logged"
        _say(f"{prefix}: error: {reason} (unexpected; {found}, or rerun with --debug to print it).")
        return 1


def _say(line: str) -> None:
    """One line on stderr, whatever it quotes: line breaks and control characters (a hostile key's
    terminal escapes) are shown escaped, and characters the terminal cannot encode too."""
    text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in line)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
