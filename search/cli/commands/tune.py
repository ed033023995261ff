"""Run (or resume) an Optuna study: every trial trains a CNN and is tracked as an MLflow run.

Rerunning the same command resumes the study until it holds --n-trials finished trials.
The same command on another machine with the same --storage (PostgreSQL) joins the study.

Examples:
  convtune tune experiments/quickstart.yaml
  convtune tune experiments/quickstart.yaml --n-trials 20 --set trainer.max_epochs=3
  convtune tune experiments/fashion_mnist.yaml --devices 0,1 --storage postgresql://localhost/optuna
  convtune tune experiments/quickstart.yaml --devices cpu --workers 2
  convtune tune experiments/fashion_mnist.yaml --study fm-2 --warm-start fashion-mnist
  convtune tune experiments/fashion_mnist.yaml --devices cpu --workers 2 --budget 60m

With --budget (90s, 45m, 1h30m or seconds) it searches, then reproduces the best trial (as the
experiment's `reproduce:` section says: epochs, top_k, set), all within the budget: the reproduction's
share is estimated from the trials' measured speed and reserved, the search gets the rest and stops
early enough, the reproduction is reduced (fewer members, then fewer epochs) when what is left does
not cover it, and its training stops at the deadline. See docs/reproduce.md.

Several workers run as separate processes (logs in .convtune/workers/); a killed worker's trial is
failed and retried with the same params; SIGTERM or Ctrl-C closes the running trials, and rerunning
the same command resumes the study. See docs/parallel.md.

Every trial saves a checkpoint at each epoch end; a retried trial continues from its last epoch
(docs/resume.md). --warm-start STUDY seeds a new study from an earlier one's trials.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import TYPE_CHECKING

from search.cli.commands import add_experiment, add_study, checked_study
from search.errors import ConfigError, ConvtuneError

if TYPE_CHECKING:
    from search.experiment.spec import ExperimentSpec
    from search.study.runner import TuneOptions


def configure(parser: argparse.ArgumentParser) -> None:
    add_experiment(parser)
    add_study(parser)
    parser.add_argument("--n-trials", type=int, metavar="N", help="finished trials the study should hold")
    parser.add_argument("--timeout", type=float, metavar="S", help="stop starting new trials after S seconds")
    parser.add_argument(
        "--budget",
        metavar="DURATION",
        help="search, then reproduce the best, all within DURATION (90s, 45m, 1h30m, or seconds); "
        "convtune splits it; not with --timeout",
    )
    parser.add_argument(
        "--devices",
        default="auto",
        metavar="auto|cpu|0,1,..",
        help="where trials run: 'auto' (all visible GPUs, else one CPU worker), 'cpu', or GPU ids",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="CPU worker processes (with --devices cpu)")
    parser.add_argument(
        "--trials-per-device",
        type=int,
        default=1,
        metavar="K",
        help="concurrent trials per GPU for small nets",
    )
    parser.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="seed the study from an earlier one: its fitting trials as priors, its best configs first",
    )
    parser.add_argument(
        "--warm-storage", metavar="URL", help="the --warm-start study's storage (default: --storage)"
    )
    parser.add_argument("--no-artifacts", action="store_true", help="skip per-trial pictures and tables")
    parser.add_argument("--quiet", action="store_true", help="no live progress display")


def run(args: argparse.Namespace) -> int:
    started = time.time()  # a budget counts from here: start-up and checks are part of it
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.experiment.spec import load_experiment
    from search.parallel.worker_start import prestart_for_command_line

    budget = checked_budget(args)
    if args.n_trials is not None and args.n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1, but got {args.n_trials}.")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout must be a positive number of seconds, but got {args.timeout}.")
    study = checked_study(args)
    spec = with_warm_start(load_experiment(args.experiment, args.overrides), args)
    prestart_for_command_line(args.devices, args.workers)  # the workers' imports overlap what follows
    # lazy: after prestart, so that the forkserver imports while this process does (search.study.runner)
    from search.cli.tune_display import TuneDisplay
    from search.study.runner import TuneOptions, tune

    options = TuneOptions(
        study_name=study,
        storage=args.storage,
        n_trials=args.n_trials,
        timeout=args.timeout,
        artifacts=False if args.no_artifacts else None,
        progress=not args.quiet,
        devices=args.devices,
        workers=args.workers,
        trials_per_device=args.trials_per_device,
    )
    if budget is not None:
        return tune_within_budget(args, spec, options, budget, started)
    tune(spec, options, TuneDisplay())
    return 0


def with_warm_start(spec: ExperimentSpec, args: argparse.Namespace) -> ExperimentSpec:
    """`--warm-start` and `--warm-storage` over the experiment's `search.warm_start`."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.experiment.names import check_name
    from search.experiment.spec import WarmStartConfig

    current = spec.search.warm_start
    if args.warm_start is None and args.warm_storage is None:
        return spec
    if args.warm_start is None and current is None:
        raise ConfigError(
            "--warm-storage names where the --warm-start study is; give --warm-start STUDY too."
        )
    study = check_name(args.warm_start, "--warm-start") if args.warm_start else current.study  # type: ignore[union-attr]
    storage = args.warm_storage if args.warm_storage is not None else (current.storage if current else None)
    top_k = current.top_k if current else WarmStartConfig.model_fields["top_k"].default
    warm = WarmStartConfig(study=study, storage=storage, top_k=top_k)
    return spec.model_copy(update={"search": spec.search.model_copy(update={"warm_start": warm})})


def checked_budget(args: argparse.Namespace) -> float | None:
    """`--budget` in seconds; a `ConfigError` when malformed, not positive, or given with --timeout."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.time_budget.split import parse_duration

    if args.budget is None:
        return None
    if args.timeout is not None:
        raise ConfigError("give --budget or --timeout, not both: --budget chooses the search's time itself.")
    try:
        return parse_duration(args.budget)
    except ValueError as error:
        raise ConfigError(f"--budget {error}.") from None


def tune_within_budget(
    args: argparse.Namespace, spec: ExperimentSpec, options: TuneOptions, budget: float, started: float
) -> int:
    """The search within its share of the budget, then the reproduction within what is left."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from rich.console import Console

    from search.cli.commands.reproduce import quiet_training_logs, run_ensemble, run_single
    from search.cli.tune_display import TuneDisplay
    from search.experiment.spec import reproduction_spec
    from search.reproduce.options import ReproduceOptions
    from search.reproduce.teacher import load_teacher
    from search.study.runner import tune
    from search.study.study import best_trial
    from search.time_budget import budgeted
    from search.time_budget.split import format_duration

    console = Console(stderr=True)
    reproduction = reproduction_spec(spec, source=args.experiment)
    load_teacher(reproduction, ReproduceOptions())  # reproduce.teacher must load before the search starts
    limit = budgeted.BudgetedSearch(budget, started, spec, reproduction, console)
    options.limit, options.timeout = limit, budget
    try:
        study = tune(spec, options, TuneDisplay(console))
        search_done = time.time()
        if best_trial(study) is None:
            raise ConvtuneError(
                "no trial completed within the search's share of the --budget "
                f"({format_duration(search_done - started)} with start-up); give a larger --budget, "
                "or fewer --workers on a small machine."
            )
        plan = budgeted.reproduction_plan(limit, study, options.storage)
        quiet_training_logs()
        out = Console(soft_wrap=True)
        overridden = bool(spec.reproduce.set)
        if plan.top_k > 1:
            code = run_ensemble(reproduction, plan.options, plan.top_k, out, overridden=overridden)
        else:
            code = run_single(reproduction, plan.options, out, overridden=overridden)
        console.print(budgeted.finish(limit, search_done, plan), highlight=False, soft_wrap=True)
    finally:
        limit.close()
    return code
