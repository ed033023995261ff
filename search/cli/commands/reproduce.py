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
    from search.reproduce.ensemble import EnsembleReproduction
    from search.reproduce.member import Member
    from search.reproduce.options import ReproduceOptions
    from search.reproduce.reproduce import Reproduction
    from search.reproduce.selection import EnsembleChoice


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
    from search.reproduce.reproduce import reproduce

    with console.status("reproducing ...", spinner="dots") as spinner:
        result = reproduce(spec, options, overridden=overridden, show=spinner_line(spinner, "reproducing"))
    print_reproduction(console, result)
    if strict and result.comparable and not result.matches:
        return 1
    return 0


def print_reproduction(console: Console, result: Reproduction) -> None:
    from rich.markup import escape

    for note in result.config_notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")  # a note may quote values: [max, none]
    original = "n/a" if result.original_value is None else repr(result.original_value)
    console.print(
        f"trial {result.trial.number}: {result.metric} original {original}, reproduced {result.value!r} "
        f"(best epoch {result.best_epoch}, {result.seconds:.1f} s)"
    )
    if result.config.trainer.weight_averaging.kind != "none":
        console.print(f"weights kept: {result.weights} (the best epoch's; trainer.weight_averaging)")
    if result.averaging is not None:
        console.print(result.averaging.describe(), highlight=False)
    style = "green" if result.matches else "yellow"
    console.print(f"[{style}]{result.verdict()}[/{style}]")
    if result.tta is not None and result.tta.tta_accuracy is not None:
        console.print(f"{result.tta.describe()} (validation split)")
    test = result.test
    console.print(f"test split: accuracy {test.accuracy:.4f} on {test.total:,} images")
    per_class = "  ".join(
        f"{name}: {acc:.3f}" if acc is not None else f"{name}: -" for name, acc in test.per_class.items()
    )
    console.print(f"per class: {per_class}", highlight=False)
    if result.costs:
        console.print(f"cost: {cost_line(result.costs)}", highlight=False)
    console.print(f"mlflow run: {result.run_id}")
    if result.registered is not None:
        registered = result.registered
        console.print(
            f"registered [bold]{registered.alias_uri}[/bold] (version {registered.version}); try "
            f"`convtune predict {registered.alias_uri} IMAGE` or `convtune export {registered.alias_uri} "
            "--format onnx --out model.onnx`"
        )
    elif result.logged_uri is not None:
        console.print(f"model logged, not registered: {result.logged_uri}", highlight=False)


def run_ensemble(
    spec: ExperimentSpec, options: ReproduceOptions, top_k: int, console: Console, *, overridden: bool
) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
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


def _raw_figures(member: Member) -> str:
    """Under weight averaging, the kept and the final raw weights side by side, both without TTA:
    `; without tta: ema 0.9032 (test 0.9021), final raw 0.9033 (test 0.9015)`; else nothing."""
    averaging = member.averaging
    if averaging is None:
        return ""
    tested = member.averaging_test

    def test(key: str) -> str:
        return f" (test {tested[key]:.4f})" if key in tested else ""

    return (
        f"; without tta: {averaging.kept} {averaging.kept_accuracy:.4f}{test('test/acc_averaged')}, "
        f"final raw {averaging.raw_accuracy:.4f}{test('test/acc_raw')}"
    )


def ensemble_line(choice: EnsembleChoice, members: int) -> str:
    """Which ensemble the validation split chose, by what, and what each candidate scored there."""
    accuracies, nlls = choice.scores, choice.nll_scores
    by_accuracy = (
        f"validation accuracy {choice.accuracy:.4f} (plain average {accuracies['average']:.4f}, greedy "
        f"{accuracies['greedy']:.4f}, best single {accuracies['best single']:.4f})"
    )
    rule = ""
    if choice.margin:
        rule = f" (greedy must lead by {choice.margin:g} SE; it led by {choice.greedy_lead:.1f})"
    heading = f"ensemble chosen on the validation split by {choice.criterion}{rule}: {choice.method} "
    heading += f"({len(choice.used)} of {members} members); "
    if choice.criterion != "nll":
        return heading + by_accuracy
    by_nll = (
        f"validation NLL {choice.nll:.4f} (plain average {nlls['average']:.4f}, greedy {nlls['greedy']:.4f}, "
        f"best single {nlls['best single']:.4f})"
    )
    return f"{heading}{by_nll}; {by_accuracy}"


def print_ensemble(console: Console, result: EnsembleReproduction) -> None:
    from rich.markup import escape

    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")  # a note may quote values: [max, none]
    choice = result.choice
    for index, member in enumerate(result.members):
        test = "-" if member.test_accuracy is None else f"{member.test_accuracy:.4f}"
        console.print(
            f"member {index}: trial {member.trial.number}, weight {choice.weights[index]:.3g}, "
            f"validation accuracy {member.val_accuracy:.4f}, test {test} (weights {member.weights}"
            f"{_raw_figures(member)}, tta {','.join(member.model.tta) or 'off'}; run {member.run_id})",
            highlight=False,
        )
    console.print(ensemble_line(choice, len(result.members)), highlight=False)
    console.print(
        f"test split: accuracy {result.test.accuracy:.4f} on {result.test.total:,} images "
        f"({result.seconds:.1f} s)"
    )
    console.print(f"mlflow run: {result.run_id}")
    if result.registered is not None:
        uri = result.registered.alias_uri
        console.print(
            f"registered [bold]{uri}[/bold] (version {result.registered.version}); try "
            f"`convtune predict {uri} IMAGE` or `convtune export {uri} --format onnx --out ensemble.onnx`"
        )
    elif result.logged_uri is not None:
        console.print(f"model logged, not registered: {result.logged_uri}", highlight=False)


def cost_line(costs: dict[str, float]) -> str:
    """`params 12,345, multiply-adds 1,234,567, 0.21 ms per image (batch 1), ...` on one line."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.experiment.budgets import format_cost
    from search.study.model_cost import LATENCY_BATCH
    from search.tracking import vocabulary as v

    return (
        f"params {format_cost(costs[v.COST_PARAMS])}, multiply-adds {format_cost(costs[v.COST_MACS])}, "
        f"{format_cost(costs[v.COST_SIZE_BYTES])} bytes, {costs[v.COST_LATENCY_MS]:.3g} ms per image at "
        f"batch 1, {costs[v.COST_LATENCY_MS_BATCH]:.3g} at batch {LATENCY_BATCH} (float32, CPU)"
    )
