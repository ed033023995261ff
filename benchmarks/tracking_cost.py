"""What MLflow's system metrics cost a trial: the same trial with and without them, interleaved.

Each repeat runs one real trial (`search.objective.Objective`, pictures off) with system metrics on
and one with them off, in alternating order, and prints both wall times; at the end the median of
each and the cost as a share of the trial (target < 2%). Also prints what the dataset inputs' digest
of the training split costs once per process.

    python benchmarks/tracking_cost.py                 # Fashion-MNIST, 100 steps of 256, 5 repeats
    python benchmarks/tracking_cost.py --dataset digits --steps 20 --repeats 2   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna
from overhead import experiment, load, open_tracking

from lightning_modules.data import ImageDataModule
from search.objective import Objective, TrialSettings
from search.spec import ExperimentSpec
from search.tracking.datasets import digest_of
from search.tracking.tracker import Tracker


def one_trial(
    spec: ExperimentSpec, tracker: Tracker, study: optuna.Study, parent: str, system: bool
) -> float:
    shape = (1, (28, 28)) if spec.data.dataset == "fashion-mnist" else (1, (8, 8))
    settings = TrialSettings(device="cpu", artifacts=False, system_metrics=system)
    objective = Objective(
        spec, tracker, study_name=study.study_name, parent_run_id=parent, data_shape=shape, settings=settings
    )
    trial = study.ask()
    started = time.perf_counter()
    study.tell(trial, objective(trial))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["fashion-mnist", "digits"], default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=100, help="training steps per trial")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    spec = experiment(args.dataset, args.steps, args.batch_size, augment=False)
    datamodule = ImageDataModule(spec.data, spec.augment, seed=spec.seed)
    datamodule.setup()
    started = time.perf_counter()
    digest_of(datamodule.train_images, datamodule.train_labels)
    print(f"digest of {len(datamodule.train_labels)} training images: {time.perf_counter() - started:.3f} s")
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="convtune-tracking-cost-") as folder:
        tracker = open_tracking(Path(folder))
        study = optuna.create_study(study_name="tracking-cost", direction="maximize")
        parent = tracker.study_run(study.study_name)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        one_trial(spec, tracker, study, parent, False)  # warm-up: first-use costs
        for repeat in range(args.repeats):
            for system in (True, False) if repeat % 2 == 0 else (False, True):
                seconds = one_trial(spec, tracker, study, parent, system)
                times[system].append(seconds)
                print(f"[{repeat}] system metrics {'on ' if system else 'off'} {seconds:7.3f} s   ({load()})")
    on, off = statistics.median(times[True]), statistics.median(times[False])
    share = (on - off) / off
    print(f"median trial: {on:.3f} s with system metrics, {off:.3f} s without")
    verdict = "met" if share < 0.02 else "missed"
    print(f"cost: {on - off:+.3f} s = {share:+.2%} of a trial   (target < 2%: {verdict})")
    return {"on_s": on, "off_s": off, "share": share}


if __name__ == "__main__":
    main()
