"""Retrain the best trial (or --trial N, or the best within --pick BUDGET), test it, register it.

Rebuilds the trial's exact config, retrains it with Lightning's deterministic=True (seeded split,
loader order, augmentation and init), reports the reproduced validation metric next to the
original's, evaluates on the held-out test split, logs an MLflow run tagged
convtune.reproduction_of=<trial run id>, and registers the model under the study's name with the
alias `champion` (a new version each time). With --pick "cost/latency_ms <= 2" it takes the trial
with the best metric among those within that budget (in a Pareto study, the most accurate front
trial within it) and registers it under an alias that says the budget (`latency-2ms`), beside
`champion`. The reproduced network's cost (parameters, multiply-adds, latency) is measured too.

Examples:
  convtune reproduce experiments/quickstart.yaml
  convtune reproduce experiments/quickstart.yaml --trial 7 --epochs 20
  convtune reproduce experiments/fashion_mnist_pareto.yaml --pick "cost/params <= 20000"
  convtune reproduce experiments/quickstart.yaml --top-k 3
  convtune reproduce experiments/fashion_mnist.yaml --top-k 3 --workers 2   # members trained 2 at a time
  convtune reproduce experiments/fashion_mnist_small.yaml --teacher models:/fashion-mnist@ensemble
  convtune predict models:/quickstart@champion digit.png

The experiment's `reproduce:` section ({epochs: E, top_k: K, set: {key: value}, select_by: S,
greedy_margin: M, distinct: D, teacher: {model: MODEL, weight: W}}) gives the defaults of --epochs,
--top-k, --set, --select-by, --greedy-margin, --distinct, --teacher and --teacher-weight (the flags
win; --trial or --pick ignore its top_k).

With --teacher MODEL (knowledge distillation) MODEL predicts every training image once, before
training, and the network trains on each label blended with those probabilities: a small network
learns from the headline's ensemble what its labels alone do not say (which classes look alike).

With --top-k K (K > 1) it retrains the K best trials with distinct params (with --distinct architecture:
the best trial of each of the K best networks; one after another, each in its own
MLflow run nested under the ensemble's run), chooses their ensemble on the validation split (greedy
selection with replacement, or the plain average of all K unless greedy wins by more than
--greedy-margin standard errors; scored by validation accuracy, or with --select-by nll by negative
log-likelihood), tests it once and registers it as one model under the alias `ensemble`
(models:/<study>@ensemble), which predict, evaluate, export and explain (per member) accept.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from search.cli.commands import add_experiment, add_study, checked_study
from search.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.status import Status

    from search.experiment.spec import ExperimentSpec
    from search.reproduce.options import ReproduceOptions


def configure(parser: argparse.ArgumentParser) -> None:
    add_experiment(parser)
    add_study(parser)
    parser.add_argument(
        "--trial", type=int, metavar="N", help="trial number (default: the best COMPLETE trial)"
    )
    parser.add_argument(
        "--pick",
        metavar="BUDGET",
        help="the best trial within a budget, like 'cost/latency_ms <= 2' or 'cost/params <= 100000'; "
        "registered as @latency-2ms, @params-100k, ...",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="retrain the K best distinct trials and register their ensemble as @ensemble "
        "(1: the single best trial, as without it)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="with --top-k: retrain up to N members at once, each in its own process (on the CPU the "
        "cores are split between them; on 2 cores, 2 long members at once did x1.6 the work of one "
        "after another)",
    )
    parser.add_argument(
        "--select-by",
        choices=("accuracy", "nll"),
        help="with --top-k: what chooses the ensemble on the validation split: accuracy (then NLL), or "
        "the negative log-likelihood (then accuracy), which a handful of images cannot tip "
        "(default: the experiment's reproduce.select_by, else accuracy)",
    )
    parser.add_argument(
        "--greedy-margin",
        type=float,
        metavar="SE",
        help="with --top-k: greedy selection replaces the plain average of all K only when it wins on "
        "the validation split by more than SE standard errors of their per-image difference; 0 takes "
        "any gain, which a few images can tip (default: the experiment's reproduce.greedy_margin, else 2)",
    )
    parser.add_argument(
        "--distinct",
        choices=("params", "architecture"),
        help="with --top-k: which trials count as distinct members: params (any searched value differs) "
        "or architecture (the best trial of each of the K best networks, so members differ in more than "
        "their learning rates; default: the experiment's reproduce.distinct, else params)",
    )
    parser.add_argument(
        "--teacher",
        metavar="MODEL",
        help="knowledge distillation: train on each image's label blended with MODEL's class "
        "probabilities (models:/<name>@ensemble, models:/<name>@champion, runs:/<id>/model or a saved "
        "file), e.g. a small network taught by the headline's ensemble (default: the experiment's "
        "reproduce.teacher)",
    )
    parser.add_argument(
        "--teacher-weight",
        type=float,
        metavar="W",
        help="with a teacher: the blend, W parts teacher to 1 - W parts label, in [0, 1] (default: the "
        "experiment's reproduce.teacher.weight, else 0.5)",
    )
    parser.add_argument(
        "--epochs", type=int, metavar="E", help="train E epochs instead of the trial's (no longer comparable)"
    )
    parser.add_argument(
        "--accelerator",
        choices=("auto", "cpu", "gpu"),
        help="where to train (default: the config's trainer.accelerator); CPU reproduces to the last digit",
    )
    parser.add_argument(
        "--no-register",
        action="store_true",
        help="log the run and its model but do not register it (no new version, no alias)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when the reproduced value differs from the trial's",
    )


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from rich.console import Console

    from search.experiment.spec import load_experiment, reproduction_spec
    from search.reproduce.options import ReproduceOptions
    from search.reproduce.top_trials import MAX_TOP_K

    if args.top_k is not None and not 1 <= args.top_k <= MAX_TOP_K:
        raise ConfigError(f"--top-k must be in [1, {MAX_TOP_K}], but got {args.top_k}.")
    study = checked_study(args)
    loaded = load_experiment(args.experiment, args.overrides)
    spec = reproduction_spec(loaded, args.overrides, source=args.experiment)
    section = loaded.reproduce
    chosen = args.trial is not None or args.pick is not None
    top_k = args.top_k if args.top_k is not None else None if chosen else section.top_k
    chooses = "chooses an ensemble of several members"
    ensemble_flags = (
        (args.workers > 1, f"--workers {args.workers}", "retrains ensemble members at once"),
        (args.select_by is not None, f"--select-by {args.select_by}", chooses),
        (args.greedy_margin is not None, f"--greedy-margin {args.greedy_margin}", chooses),
        (args.distinct is not None, f"--distinct {args.distinct}", chooses),
    )
    for given, flag, what in ensemble_flags:
        if given and (top_k is None or top_k < 2):
            raise ConfigError(
                f"{flag} {what}, but this reproduces one model; give it with --top-k K (K >= 2)."
            )
    options = ReproduceOptions(
        trial=args.trial,
        epochs=args.epochs if args.epochs is not None else section.epochs,
        study_name=study,
        storage=args.storage,
        accelerator=args.accelerator,
        register=not args.no_register,
        pick=args.pick,
        workers=args.workers,
        select_by=args.select_by,
        greedy_margin=args.greedy_margin,
        distinct=args.distinct,
        teacher=args.teacher,
        teacher_weight=args.teacher_weight,
    )
    quiet_training_logs()
    console = Console(soft_wrap=True)
    overridden = bool(args.overrides or section.set)
    if top_k is not None and top_k > 1:
        return run_ensemble(spec, options, top_k, console, overridden=overridden)
    return run_single(spec, options, console, overridden=overridden, strict=args.strict)


def quiet_training_logs() -> None:
    """No per-fit banner lines while reproducing (MLflow's artifact progress bars: search/__init__.py)."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


def run_single(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    console: Console,
    *,
    overridden: bool,
    strict: bool = False,
) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.cli.reproduce_display import print_reproduction
    from search.reproduce.reproduce import reproduce

    with console.status("reproducing ...", spinner="dots") as spinner:
        result = reproduce(spec, options, overridden=overridden, show=spinner_line(spinner, "reproducing"))
    print_reproduction(console, result)
    if strict and result.comparable and not result.matches:
        return 1
    return 0


def run_ensemble(
    spec: ExperimentSpec, options: ReproduceOptions, top_k: int, console: Console, *, overridden: bool
) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.cli.reproduce_display import print_ensemble
    from search.reproduce.ensemble import reproduce_ensemble

    def progress(line: str) -> None:
        console.print(line, highlight=False)

    heading = f"reproducing the {top_k} best trials"
    with console.status(f"{heading} ...", spinner="dots") as spinner:
        show = spinner_line(spinner, heading)
        result = reproduce_ensemble(spec, options, top_k, overridden=overridden, progress=progress, show=show)
    print_ensemble(console, result)
    return 0


def spinner_line(spinner: Status, heading: str) -> Callable[[str], None]:
    """The spinner's text becomes `heading: trial 33 epoch 18/25 val/acc 0.9432 · ...`."""

    def show(line: str) -> None:
        spinner.update(f"{heading}: {line}")

    return show
