"""Does the Pareto pruning rule find a study's accuracy-against-cost front sooner than no pruning?

Races two Pareto studies of the same experiment and sampler seed, each with the same budget of
seconds: one with the experiment's `pareto` pruner, one with `pruner: none`. Trials of the two arms
alternate and each arm's clock counts only its own trials, so a load change on a shared machine
slows both alike. After the race it computes each arm's hypervolume over time: the area of
(metric, log10 cost) space its COMPLETE trials dominate, up to a reference point shared by both arms
(the worst metric and the largest cost either arm saw), and prints

  - both arms' final hypervolume, and the pruning arm's at half the budget;
  - when the pruning arm reached the no-pruning arm's final hypervolume (seconds, share of budget);
  - how much of the no-pruning arm's final front the pruning arm's front covers (a front point is
    covered when a pruning-arm trial is at least as good in every objective, within 0.005 in the
    metric).

`--repeats` races again with other seeds and prints the medians. Saves a PNG of the curves.

The default experiment is `experiments/quickstart.yaml` on digits (8 epochs a trial) turned into a
Pareto study of val/acc against cost/macs (multiply-adds are exact, so the front is not blurred by
latency noise) with widths, filter size, stride and pooling searched:

    python benchmarks/pareto_pruning.py                           # 300 s per arm: ~10 min
    python benchmarks/pareto_pruning.py --budget 240 --repeats 3  # ~25 min
    python benchmarks/pareto_pruning.py experiments/fashion_mnist_pareto.yaml --budget 900
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from optuna._hypervolume import compute_hypervolume  # private in optuna 5.0; a benchmark may use it
from optuna.trial import TrialState

from benchmarks.search_efficiency import Arm
from lightning_modules.data import ImageDataModule
from search.experiment.spec import ExperimentSpec, load_experiment, validate_experiment
from search.study.objective import Objective, TrialSettings
from search.study.samplers import make_pruner, make_sampler
from search.study.trial_loop import run_one
from search.tracking import Tracker, TrackingSettings
from search.tracking.vocabulary import ATTR_CURVE, ATTR_INFEASIBLE

REPO = Path(__file__).resolve().parents[1]
DIGITS_PARETO = {
    "objectives": [{"metric": "val/acc"}, {"metric": "cost/macs"}],
    "pruner": {"name": "pareto", "n_warmup_steps": 1, "n_startup_trials": 3, "margin": 0.01},
    "sampler": {"name": "tpe", "n_startup_trials": 8},
    "n_trials": 1000,
}
DIGITS_SPACE = {
    "model.channels.0": {"choice": [4, 8, 16, 32]},
    "model.channels.1": {"choice": [8, 16, 32, 64]},
}
COVER_TOLERANCE = 0.005


@dataclass
class ParetoArm(Arm):
    """The search-efficiency race's arm, keeping when each COMPLETE trial ended and its values."""

    points: list[tuple[float, list[float]]] = field(default_factory=list)
    epochs: int = 0

    def step(self, maximize: bool = True) -> None:
        started = time.perf_counter()
        state = run_one(self.study, self.study.ask(), self.objective)
        self.clock += time.perf_counter() - started
        trial = self.study.trials[-1]
        name = "INFEASIBLE" if ATTR_INFEASIBLE in trial.user_attrs else state.name  # pruned before training
        self.states[name] = self.states.get(name, 0) + 1
        self.epochs += len(trial.user_attrs.get(ATTR_CURVE, []))
        if state == TrialState.COMPLETE:
            self.points.append((self.clock, list(trial.values)))


def digits_spec(seed: int) -> ExperimentSpec:
    raw = load_experiment(REPO / "experiments" / "quickstart.yaml").model_dump(mode="json", by_alias=True)
    raw["name"] = "digits-pareto"
    raw["search"] |= DIGITS_PARETO
    raw["search"]["sampler"]["seed"] = seed
    raw["search"]["space"] = {**raw["search"]["space"], **DIGITS_SPACE}
    for key in ("metric", "direction"):
        raw["search"].pop(key, None)
    return validate_experiment(raw, source="digits Pareto benchmark")


def with_pruner(spec: ExperimentSpec, name: str) -> ExperimentSpec:
    search = spec.search.model_copy(update={"pruner": spec.search.pruner.model_copy(update={"name": name})})
    return spec.model_copy(update={"search": search})


def make_arm(
    label: str, spec: ExperimentSpec, tracker: Tracker, shape: tuple[int, tuple[int, int]]
) -> ParetoArm:
    study = optuna.create_study(
        study_name=f"{label.replace(' ', '-')}-{time.monotonic_ns()}",
        sampler=make_sampler(spec, shape),
        pruner=make_pruner(spec),
        directions=spec.search.directions,
    )
    parent = tracker.study_run(study.study_name)
    settings = TrialSettings(device="cpu", artifacts=False, system_metrics=False)
    objective = Objective(
        spec, tracker, study_name=study.study_name, parent_run_id=parent, data_shape=shape, settings=settings
    )
    return ParetoArm(label, study, objective)


# --- hypervolume --------------------------------------------------------------------------------------


def to_loss(values: list[float], maximize: bool) -> list[float]:
    """Minimized coordinates: the metric (negated when maximized), then log10 of each cost."""
    return [-values[0] if maximize else values[0], *(math.log10(max(c, 1e-12)) for c in values[1:])]


def hypervolume(losses: list[list[float]], reference: np.ndarray) -> float:
    if not losses:
        return 0.0
    points = np.minimum(np.asarray(losses, dtype=float), reference)
    return float(compute_hypervolume(points, reference))


def curve(arm: ParetoArm, reference: np.ndarray, maximize: bool) -> list[tuple[float, float]]:
    losses: list[list[float]] = []
    result = []
    for seconds, values in arm.points:
        losses.append(to_loss(values, maximize))
        result.append((seconds, hypervolume(losses, reference)))
    return result


def at(points: list[tuple[float, float]], seconds: float) -> float:
    return max([value for when, value in points if when <= seconds], default=0.0)


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((when for when, value in points if value >= target - 1e-12), None)


def covered_share(pruned: ParetoArm, plain: ParetoArm, maximize: bool) -> float:
    """Share of the no-pruning arm's front that a pruning-arm trial matches or beats."""
    front_trials = plain.study.best_trials
    if not front_trials:
        return 0.0
    mine = [to_loss(values, maximize) for _, values in pruned.points]
    covered = 0
    for trial in front_trials:
        target = to_loss(list(trial.values), maximize)
        covered += any(
            p[0] <= target[0] + COVER_TOLERANCE
            and all(a <= b + 1e-12 for a, b in zip(p[1:], target[1:], strict=True))
            for p in mine
        )
    return covered / len(front_trials)


@dataclass
class Race:
    arms: list[ParetoArm]
    budget: float
    curves: list[list[tuple[float, float]]]
    reached: float | None
    covered: float

    @property
    def finals(self) -> list[float]:
        return [at(points, self.budget) for points in self.curves]


def race(spec: ExperimentSpec, budget: float, tracker: Tracker, shape: tuple[int, tuple[int, int]]) -> Race:
    arms = [
        make_arm("pareto pruning", spec, tracker, shape),
        make_arm("no pruning", with_pruner(spec, "none"), tracker, shape),
    ]
    while any(arm.clock < budget for arm in arms):
        for arm in arms:
            if arm.clock < budget:
                arm.step()
        print(
            " | ".join(f"{a.label}: {len(a.study.trials)} trials, {a.clock:.0f} s" for a in arms), flush=True
        )
    maximize = spec.search.resolved_direction == "maximize"
    everything = [to_loss(values, maximize) for arm in arms for _, values in arm.points]
    reference = np.max(np.asarray(everything), axis=0) + 1e-3
    curves = [curve(arm, reference, maximize) for arm in arms]
    reached = time_to(curves[0], at(curves[1], budget))
    return Race(arms, budget, curves, reached, covered_share(arms[0], arms[1], maximize))


def report(result: Race) -> None:
    for arm, final in zip(result.arms, result.finals, strict=True):
        completed = len(arm.points)
        print(
            f"  {arm.label}: {len(arm.study.trials)} trials ({arm.states}), {arm.epochs} epochs trained, "
            f"{completed} complete, front {len(arm.study.best_trials)} trials, hypervolume {final:.4f}"
        )
    half = at(result.curves[0], result.budget / 2)
    print(
        f"  pruning arm at half the budget: hypervolume {half:.4f} "
        f"({half / max(result.finals[1], 1e-12):.3f} of no pruning's final)"
    )
    if result.reached is None:
        print("  the pruning arm did not reach the no-pruning arm's final hypervolume")
    else:
        share = result.reached / result.budget
        print(f"  pruning arm reached it after {result.reached:.0f} s ({share:.2f} of the budget)")
    print(f"  the pruning arm's trials cover {result.covered:.0%} of the no-pruning arm's front")


def plot(races: list[Race], path: Path) -> None:
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    for index, result in enumerate(races):
        for points, style, arm in zip(result.curves, ("-", "--"), result.arms, strict=True):
            seconds, volume = zip(*points, strict=True) if points else ((), ())
            axes.step(seconds, volume, style, where="post", label=f"{arm.label} #{index + 1}")
    axes.set_xlabel("seconds of the arm's own trials")
    axes.set_ylabel("hypervolume (metric, log10 cost)")
    axes.legend(fontsize=7)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", nargs="?", help="a Pareto experiment (default: digits, see above)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of trials per arm")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--plot", default="pareto_pruning.png")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (digits: 1 is fastest)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()}")
    races = []
    with tempfile.TemporaryDirectory(prefix="pareto-pruning-") as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        tracker = Tracker(TrackingSettings(uri, uri, str(Path(folder) / "mlartifacts")))
        for repeat in range(args.repeats):
            spec = _spec(args, seed=repeat)
            shape = _data_shape(spec)
            print(f"repeat {repeat + 1}: {spec.name}, {args.budget:.0f} s per arm")
            races.append(race(spec, args.budget, tracker, shape))
            report(races[-1])
    if len(races) > 1:
        shares = [r.reached / r.budget if r.reached is not None else math.inf for r in races]
        print(
            "median share of the budget to reach no pruning's final hypervolume: "
            f"{statistics.median(shares):.2f}"
        )
    plot(races, Path(args.plot))
    print(f"plot: {args.plot}; load average {os.getloadavg()}")
    return 0


def _spec(args: Any, seed: int) -> ExperimentSpec:
    if args.experiment is None:
        return digits_spec(seed)
    spec = load_experiment(args.experiment, args.overrides)
    sampler = spec.search.sampler.model_copy(update={"seed": (spec.search.sampler.seed or 0) + seed})
    return spec.model_copy(update={"search": spec.search.model_copy(update={"sampler": sampler})})


def _data_shape(spec: ExperimentSpec) -> tuple[int, tuple[int, int]]:
    datamodule = ImageDataModule(spec.data, seed=spec.seed)
    datamodule.setup()
    return datamodule.in_channels, datamodule.image_size


if __name__ == "__main__":
    sys.exit(main())
