"""Validate an experiment file and show its search space and per-layer shapes.

Nothing is trained or written. Prints the search space, then for the base config each layer's
output shape, receptive field and parameter count, and how many architectures in the space fit.
With search.constraints, it estimates what fraction of the space fits the budget (parameters,
multiply-adds and size computed for 256 sampled configs; latency measured on this CPU for 8 of
them) and refuses a space where nothing fits (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from search.cli.commands import add_experiment


def configure(parser: argparse.ArgumentParser) -> None:
    add_experiment(parser)


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from rich.console import Console
    from rich.table import Table

    from lightning_modules.models.shapes import InfeasibleArchitecture
    from lightning_modules.precision import AUTO
    from search.experiment.spec import load_experiment
    from search.inspect.describe import architecture_rows
    from search.study.preflight import preflight
    from search.tracking import load_settings

    spec = load_experiment(args.experiment, args.overrides)
    checked = preflight(spec)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(
        f"[bold]{spec.name}[/bold]: {spec.data.dataset} ({checked.train_size} train / {checked.val_size} val "
        f"images, {checked.in_channels}x{checked.image_size[0]}x{checked.image_size[1]}, "
        f"{checked.num_classes} classes), model {spec.model.name}, {spec.search.n_trials} trials "
        f"{spec.search.resolved_direction} {spec.search.metric}"
    )
    for note in checked.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if spec.trainer.precision == AUTO:
        console.print(f"precision auto: {auto_precision_summary()}")
    if spec.augment:
        console.print(augmentation_summary(spec.augment, spec.data.augment_backend), highlight=False)
    space = Table(title="search space")
    space.add_column("key")
    space.add_column("values")
    for key, param in spec.search.space.items():
        space.add_row(key, param.describe())
    console.print(space if spec.search.space else "search space: empty (every trial trains the base config)")
    try:
        console.print(
            architecture_rows(spec.run_config(), checked.in_channels, checked.image_size, checked.num_classes)
        )
    except InfeasibleArchitecture as error:  # the space holds architectures that can (preflight said so)
        console.print(
            f"[yellow]the base architecture cannot run: {error} Trials that change it can.[/yellow]"
        )
    feasible = checked.feasibility
    if feasible.infeasible:
        console.print(
            f"[yellow]{feasible.infeasible} of {feasible.checked} architecture combinations in the space "
            f"cannot run and will be pruned before training, e.g.: {feasible.first_reason}[/yellow]"
        )
    if checked.budget is not None:
        console.print(checked.budget.summary(), highlight=False)
    if spec.search.is_pareto:
        console.print(
            f"Pareto study: {spec.search.metric} ({spec.search.resolved_direction}d) against "
            f"{', '.join(spec.search.cost_objectives)} (minimized); pruner {spec.search.pruner.name}.",
            highlight=False,
        )
    console.print("where results go:", highlight=False)
    for line in load_settings().destinations():
        console.print(f"  {line}", highlight=False, markup=False)
    console.print("[green]ok[/green]: the experiment is valid.")
    return 0


def augmentation_summary(augment: list[dict[str, Any]], backend: str) -> str:
    """Which transforms augment the training batches, and how (`data.augment_backend`)."""
    from lightning_modules.augment import build_augmentation
    from lightning_modules.batch_augment import augmentation_for_backend, unbatchable

    compose = build_augmentation(augment)
    names = ", ".join(type(transform).__name__ for transform in compose.transforms)  # type: ignore[union-attr]
    if augmentation_for_backend(compose, backend) is not None:
        return f"augment {backend}: {names}, batched (tensor ops on whole batches, where they lie)"
    why = (
        f"{backend}"
        if backend == "albumentations"
        else f"auto, no batched form of {', '.join(unbatchable(compose))}"
    )
    return f"augment {why}: {names}, per image with albumentations in the data loader"


def auto_precision_summary() -> str:
    """What `precision: auto` trains with on this machine's CPU and, if present, its GPU."""
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    import torch

    from lightning_modules.precision import resolve_precision

    summary = f"{resolve_precision('auto', 'cpu')} on this CPU"
    if torch.cuda.is_available():
        summary += f", {resolve_precision('auto', 'gpu')} on {torch.cuda.get_device_name(0)}"
    return summary
