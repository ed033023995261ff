"""How much faster TPE with pruning finds a good model than random search without pruning.

Races two studies of the same experiment, each with the same budget of seconds: the experiment's
sampler and pruner (TPE + pruning) against a random sampler with no pruning, seeded one apart so
that its trials are not TPE's random start-up trials over again. Trials of the two arms alternate,
and each arm's clock counts only its own trials, so a load change on a shared machine slows both
arms alike. Prints both best-so-far curves (seconds, best validation metric) and when each arm
reached random search's final best. The target: the guided arm gets there within a third of the
budget random search had; the stricter ratio, against the moment random search itself found that
best, follows. `--repeats` races again with other seeds and prints the median. Saves a PNG plot.

The default experiment, `experiments/fashion_mnist_explore.yaml`, is the space someone new to CNNs
writes (filter size, stride, padding, pooling, activation, batch norm, dropout, widths, learning
rate and weight decay over wide ranges); narrowed spaces such as the headline's leave little to find.

    python benchmarks/search_efficiency.py             # the file's search.timeout (900 s) per arm: 31 min
    python benchmarks/search_efficiency.py --repeats 3 --budget 600
    python benchmarks/search_efficiency.py experiments/fashion_mnist.yaml --budget 1500
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from optuna.trial import TrialState

from lightning_modules.data import ImageDataModule
from search.experiment.spec import ExperimentSpec, load_experiment
from search.study.objective import Objective, TrialSettings
from search.study.samplers import make_pruner, make_sampler
from search.study.trial_loop import run_one
from search.tracking import Tracker, TrackingSettings
from search.tracking.vocabulary import ATTR_INFEASIBLE

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Arm:
    """One study and its own clock: seconds spent in its trials, and the best value after each."""

    label: str
    study: optuna.Study
    objective: Objective
    clock: float = 0.0
    curve: list[tuple[float, float]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)

    @property
    def best(self) -> float | None:
        return self.curve[-1][1] if self.curve else None

    def step(self, maximize: bool) -> None:
        started = time.perf_counter()
        state = run_one(self.study, self.study.ask(), self.objective)
        self.clock += time.perf_counter() - started
        infeasible = ATTR_INFEASIBLE in self.study.trials[-1].user_attrs  # pruned before training
        name = "INFEASIBLE" if infeasible else state.name
        self.states[name] = self.states.get(name, 0) + 1
        if state != TrialState.COMPLETE:
            return
        value = self.study.trials[-1].value
        assert value is not None
        better = self.best is None or (value > self.best if maximize else value < self.best)
        if better:
            self.curve.append((self.clock, value))

    def progress_line(self) -> str:
        trial = self.study.trials[-1]
        value = "" if trial.value is None else f" {trial.value:.4f}"
        best = "none" if self.best is None else f"{self.best:.4f}"
        return (
            f"{self.label}: trial {trial.number} {trial.state.name}{value} at {self.clock:.0f} s, best {best}"
        )

    def time_to_reach(self, target: float, maximize: bool) -> float | None:
        for seconds, value in self.curve:
            if (value >= target) if maximize else (value <= target):
                return seconds
        return None


def random_arm_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """Random search without pruning, seeded apart from the guided arm: TPE's start-up trials are
    random draws too, and with the same seed both arms would begin with the same configurations."""
    search = spec.search.model_copy(deep=True)
    seed = search.sampler.seed + 1 if search.sampler.seed is not None else None
    random_sampler = {"name": "random", "seed": seed, "multivariate": False, "cost_aware": False}
    search.sampler = search.sampler.model_copy(update=random_sampler)
    search.pruner = search.pruner.model_copy(update={"name": "none"})
    return spec.model_copy(update={"search": search})


def make_arm(label: str, spec: ExperimentSpec, tracker: Tracker, shape: tuple[int, tuple[int, int]]) -> Arm:
    study = optuna.create_study(
        study_name=label.replace(" ", "-").replace("+", "and"),
        sampler=make_sampler(spec, shape),
        pruner=make_pruner(spec),
        direction=spec.search.resolved_direction,
    )
    parent = tracker.study_run(study.study_name)
    settings = TrialSettings(device="cpu", artifacts=False)
    objective = Objective(
        spec, tracker, study_name=study.study_name, parent_run_id=parent, data_shape=shape, settings=settings
    )
    return Arm(label, study, objective)


@dataclass
class Race:
    """One repeat: both arms, random search's final best, and when each arm reached it."""

    arms: list[Arm]
    budget: float
    target: float | None
    reached: list[float | None]

    @property
    def share_of_budget(self) -> float | None:
        return self.reached[0] / self.budget if self.reached[0] is not None else None

    @property
    def ratio_to_random(self) -> float | None:
        guided, random_ = self.reached
        return guided / random_ if guided is not None and random_ else None


def race(spec: ExperimentSpec, budget: float, shape: tuple[int, tuple[int, int]], label: str) -> Race:
    """Alternates the two arms' trials until each has spent `budget` seconds in its own trials."""
    maximize = spec.search.resolved_direction == "maximize"
    guided = f"{spec.search.sampler.name} + {spec.search.pruner.name} pruning"
    with tempfile.TemporaryDirectory(prefix="convtune-search-efficiency-") as folder:
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        tracker = Tracker(TrackingSettings(store, store, str(Path(folder) / "mlartifacts")))
        arms = [
            make_arm(guided, spec, tracker, shape),
            make_arm("random, no pruning", random_arm_spec(spec), tracker, shape),
        ]
        while any(arm.clock < budget for arm in arms):
            for arm in arms:
                if arm.clock < budget:
                    arm.step(maximize)
                    print(f"  {label} {arm.progress_line()}", flush=True)
    target = arms[1].best
    reached = [arm.time_to_reach(target, maximize) if target is not None else None for arm in arms]
    return Race(arms, budget, target, reached)


def report(race_: Race, metric: str) -> None:
    for arm in race_.arms:
        print(f"{arm.label}: {sum(arm.states.values())} trials {arm.states}, {arm.clock:.0f} s")
        points = ", ".join(f"({s:.0f}, {v:.4f})" for s, v in arm.curve)
        print(f"  best-so-far (seconds, {metric}): {points}")
    print(f"random search's best {metric}: {race_.target}")
    for arm, seconds in zip(race_.arms, race_.reached, strict=True):
        print(f"  {arm.label} reached it after: {'never' if seconds is None else f'{seconds:.0f} s'}")
    share, ratio = race_.share_of_budget, race_.ratio_to_random
    if share is None:
        print("the guided arm did not reach random search's best")
        return
    print(f"guided time / random search's budget: {share:.2f}   (target <= 0.33: {_verdict(share)})")
    print(f"guided time / the time random search took to find its best: {ratio:.2f}   (stricter)")


def _verdict(share: float | None) -> str:
    return "met" if share is not None and share <= 1 / 3 else "missed"


def _median(values: list[float | None]) -> float | None:
    """The median, a repeat that never reached the target counting as infinitely slow."""
    middle = statistics.median(value if value is not None else math.inf for value in values)
    return None if math.isinf(middle) else middle


def plot(races: list[Race], budget: float, metric: str, path: Path) -> None:
    figure = Figure(figsize=(5.5 * len(races), 4.2))
    FigureCanvasAgg(figure)
    for index, race_ in enumerate(races):
        axes = figure.add_subplot(1, len(races), index + 1)
        for arm in race_.arms:
            if arm.curve:
                xs = [x for x, _ in arm.curve] + [arm.clock]  # the last trial may end past the budget
                ys = [y for _, y in arm.curve] + [arm.curve[-1][1]]
                axes.step(xs, ys, where="post", marker="o", label=arm.label)
        if race_.target is not None:
            axes.axhline(race_.target, color="grey", linestyle=":", label="random search's best")
            axes.set_ylim(bottom=race_.target - 0.1)  # hopeless start-up trials would flatten the race
        axes.axvline(budget / 3, color="grey", linestyle="--", linewidth=0.8, label="a third of the budget")
        axes.set_xlim(0, max([budget, *(arm.clock for arm in race_.arms)]) * 1.05)
        axes.set_xlabel("seconds of the arm's own trials")
        axes.set_ylabel(f"best {metric} so far")
        title = "search efficiency" + (f", repeat {index + 1}" if len(races) > 1 else "")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def reseeded(spec: ExperimentSpec, offset: int) -> ExperimentSpec:
    """The experiment with its sampler seed moved by `offset` (each repeat draws other trials)."""
    search = spec.search.model_copy(deep=True)
    seed = spec.seed if search.sampler.seed is None else search.sampler.seed  # as make_sampler reads it
    search.sampler = search.sampler.model_copy(update={"seed": seed + offset})
    return spec.model_copy(update={"search": search})


def main(argv: list[str] | None = None) -> list[Race]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiment", nargs="?", default=str(REPO / "experiments" / "fashion_mnist_explore.yaml")
    )
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds of trials per arm (default: the experiment's search.timeout, else 600)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="races with other sampler seeds (+10 each)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--out", default="search_efficiency.png", help="where to save the plot")
    args = parser.parse_args(argv)
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be positive, but got {args.budget}.")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, but got {args.repeats}.")
    spec = load_experiment(args.experiment, args.overrides)
    budget = args.budget or spec.search.timeout or 600.0
    datamodule = ImageDataModule(spec.data, spec.augment, seed=spec.seed)
    datamodule.setup()  # decoded once, shared by every arm's trials
    shape = (datamodule.in_channels, datamodule.image_size)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = spec.search.metric
    races = []
    for repeat in range(args.repeats):
        races.append(race(reseeded(spec, 10 * repeat), budget, shape, f"[repeat {repeat + 1}]"))
        print(f"== repeat {repeat + 1} of {args.repeats} (sampler seed +{10 * repeat})")
        report(races[-1], metric)
    if args.repeats > 1:
        shares = [race_.share_of_budget for race_ in races]
        ratios = [race_.ratio_to_random for race_ in races]
        listed = ", ".join("never" if share is None else f"{share:.2f}" for share in shares)
        median = _median(shares)
        shown = "never" if median is None else f"{median:.2f}"
        print(
            f"guided time / budget per repeat: {listed}; median {shown} (target <= 0.33: {_verdict(median)})"
        )
        listed = ", ".join("never" if ratio is None else f"{ratio:.2f}" for ratio in ratios)
        print(f"guided time / random's time to its best per repeat: {listed}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    plot(races, budget, metric, Path(args.out))
    print(f"plot: {Path(args.out).resolve()}")
    return races


if __name__ == "__main__":
    main()
