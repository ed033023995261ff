"""What `convtune reproduce` prints: a reproduction's verdict, test and cost, or an ensemble's members
and the choice made on the validation split."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from search.experiment.budgets import format_cost
from search.reproduce.ensemble import EnsembleReproduction
from search.reproduce.member import Member
from search.reproduce.reproduce import Reproduction
from search.reproduce.selection import EnsembleChoice
from search.study.model_cost import LATENCY_BATCH
from search.tracking import vocabulary as v


def print_reproduction(console: Console, result: Reproduction) -> None:
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
    return (
        f"params {format_cost(costs[v.COST_PARAMS])}, multiply-adds {format_cost(costs[v.COST_MACS])}, "
        f"{format_cost(costs[v.COST_SIZE_BYTES])} bytes, {costs[v.COST_LATENCY_MS]:.3g} ms per image at "
        f"batch 1, {costs[v.COST_LATENCY_MS_BATCH]:.3g} at batch {LATENCY_BATCH} (float32, CPU)"
    )
