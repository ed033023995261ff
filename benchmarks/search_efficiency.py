"""How much faster TPE with pruning finds a good model than random search without pruning.

Runs two studies of the same experiment with the same time budget each: the experiment's sampler
and pruner (by default TPE + its pruner) against a random sampler with no pruning, seeded one apart
so that its trials are not TPE's random start-up trials over again. Trials of the two
arms alternate, and each arm's clock counts only its own trials, so a load change on a shared machine
slows both arms alike. Prints both best-so-far curves (seconds, best validation metric), the time each
arm needed to reach random search's final best, and their ratio (target: at most 1/3; the stricter
reading, against the moment random search found its best; the ratio to the whole budget follows),
and saves a PNG plot of the curves.

    python benchmarks/search_efficiency.py                                  # quickstart, 240 s per arm
    python benchmarks/search_efficiency.py experiments/fashion_mnist.yaml --budget 1200 \
        --set data.train_fraction=0.2 --set trainer.max_epochs=4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from optuna.trial import TrialState

from lightning_modules.data import ImageDataModule
from search.objective import USER_ATTR_INFEASIBLE, Objective, TrialSettings
from search.spec import ExperimentSpec, load_experiment
from search.study import make_pruner, make_sampler, run_one
from search.tracking import Tracker, TrackingSettings

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
        infeasible = USER_ATTR_INFEASIBLE in self.study.trials[-1].user_attrs  # pruned before training
        name = "INFEASIBLE" if infeasible else state.name
        self.states[name] = self.states.get(name, 0) + 1
        if state != TrialState.COMPLETE:
            return
        value = self.study.trials[-1].value
        assert value is not None
        better = self.best is None or (value > self.best if maximize else value < self.best)
        if better:
            self.curve.append((self.clock, value))

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
    search.sampler = search.sampler.model_copy(update={"name": "random", "seed": seed})
    search.pruner = search.pruner.model_copy(update={"name": "none"})
    return spec.model_copy(update={"search": search})


def make_arm(label: str, spec: ExperimentSpec, tracker: Tracker, shape: tuple[int, tuple[int, int]]) -> Arm:
    study = optuna.create_study(
        study_name=label.replace(" ", "-").replace("+", "and"),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        direction=spec.search.resolved_direction,
    )
    parent = tracker.study_run(study.study_name)
    settings = TrialSettings(device="cpu", artifacts=False)
    objective = Objective(
        spec, tracker, study_name=study.study_name, parent_run_id=parent, data_shape=shape, settings=settings
    )
    return Arm(label, study, objective)


def plot(arms: list[Arm], budget: float, metric: str, target: float | None, path: Path) -> None:
    figure = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for arm in arms:
        if arm.curve:
            xs = [x for x, _ in arm.curve] + [arm.clock]  # the last trial may end past the budget
            ys = [y for _, y in arm.curve] + [arm.curve[-1][1]]
            axes.step(xs, ys, where="post", marker="o", label=arm.label)
    if target is not None:
        axes.axhline(target, color="grey", linestyle=":", label="random search's best")
    axes.set_xlim(0, max([budget, *(arm.clock for arm in arms)]) * 1.05)
    axes.set_xlabel("seconds of the arm's own trials")
    axes.set_ylabel(f"best {metric} so far")
    axes.set_title("search efficiency: best-so-far against time")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, float | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", default=str(REPO / "experiments" / "quickstart.yaml"))
    parser.add_argument("--budget", type=float, default=240.0, help="seconds of trials per arm")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--out", default="search_efficiency.png", help="where to save the plot")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be positive, but got {args.budget}.")
    spec = load_experiment(args.experiment, args.overrides)
    maximize = spec.search.resolved_direction == "maximize"
    datamodule = ImageDataModule(spec.data, spec.augment, seed=spec.seed)
    datamodule.setup()  # decoded once, shared by both arms' trials
    shape = (datamodule.in_channels, datamodule.image_size)
    guided = f"{spec.search.sampler.name} + {spec.search.pruner.name} pruning"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="convtune-search-efficiency-") as folder:
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        tracker = Tracker(TrackingSettings(store, store, str(Path(folder) / "mlartifacts")))
        arms = [
            make_arm(guided, spec, tracker, shape),
            make_arm("random, no pruning", random_arm_spec(spec), tracker, shape),
        ]
        while any(arm.clock < args.budget for arm in arms):
            for arm in arms:
                if arm.clock < args.budget:
                    arm.step(maximize)
    load = os.getloadavg()
    metric = spec.search.metric
    for arm in arms:
        print(f"{arm.label}: {sum(arm.states.values())} trials {arm.states}, {arm.clock:.0f} s")
        points = ", ".join(f"({s:.0f}, {v:.4f})" for s, v in arm.curve)
        print(f"  best-so-far (seconds, {metric}): {points}")
    target = arms[1].best
    reached = [arm.time_to_reach(target, maximize) if target is not None else None for arm in arms]
    ratio = reached[0] / reached[1] if reached[0] is not None and reached[1] else None
    print(f"random search's best {metric}: {target}")
    for arm, seconds in zip(arms, reached, strict=True):
        print(f"  {arm.label} reached it after: {'never' if seconds is None else f'{seconds:.0f} s'}")
    if ratio is not None:
        verdict = "met" if ratio <= 1 / 3 else "missed"
        print(f"time ratio guided / random: {ratio:.2f}   (target <= 0.33: {verdict})")
        share = reached[0] / args.budget
        verdict = "met" if share <= 1 / 3 else "missed"
        print(f"guided time / the budget random searched for: {share:.2f}   (target <= 0.33: {verdict})")
    else:
        print("time ratio guided / random: none (the guided arm did not reach random's best)")
    print(f"load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    plot(arms, args.budget, metric, target, Path(args.out))
    print(f"plot: {Path(args.out).resolve()}")
    return {"target": target, "guided_s": reached[0], "random_s": reached[1], "ratio": ratio}


if __name__ == "__main__":
    main()
