"""What MLflow's system metrics cost a trial: the same trial with and without them, interleaved.

Each repeat runs one real trial (`search.study.objective.Objective`, pictures off) with system metrics on
and one with them off, in alternating order, and prints both wall times; at the end the median of
each and the cost as a share of the trial (target < 2%). Also prints what the dataset inputs' digest
of the training split costs once per process.

    python benchmarks/tracking_cost.py                 # Fashion-MNIST, 100 steps of 256, 5 repeats
    python benchmarks/tracking_cost.py --dataset digits --steps 20 --repeats 2   # a smoke run
    python benchmarks/tracking_cost.py --monitor-only 60      # the monitor's own CPU time, 60 s

Wall times of whole trials move with whatever else the machine runs; the monitor's own CPU time
does not (much): `--monitor-only S` runs MLflow's monitor for S seconds beside an idle main thread
and prints the CPU seconds it used, its start and finish, and that CPU as a share of the CPU a
trial of the same length uses on this machine's cores.
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
from lightning_modules.machine import available_cpus
from search.experiment.spec import ExperimentSpec
from search.study.objective import Objective, TrialSettings
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


def monitor_cpu(seconds: float) -> dict[str, float]:
    """CPU seconds MLflow's system-metrics monitor uses in `seconds` of wall time (main thread idle)."""
    with tempfile.TemporaryDirectory(prefix="convtune-monitor-cost-") as folder:
        tracker = open_tracking(Path(folder))
        run_id = tracker.study_run("monitor-cost")
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        with tracker.system_metrics(run_id):
            started = time.perf_counter()
            time.sleep(seconds)
            stopping = time.perf_counter()
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        overhead_wall = wall - (stopping - started)
    cores = available_cpus()
    share = cpu / (wall * cores)
    print(f"monitor for {wall:.1f} s: {cpu:.3f} CPU s ({cpu / wall * 1000:.2f} ms of CPU per second)")
    print(f"start + finish + last publish: {overhead_wall:.3f} s of wall time")
    verdict = "met" if share < 0.02 else "missed"
    print(f"share of a trial that keeps {cores} cores busy: {share:.3%}   (target < 2%: {verdict})")
    return {"cpu_s": cpu, "wall_s": wall, "share": share}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["fashion-mnist", "digits"], default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=100, help="training steps per trial")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--monitor-only", type=float, metavar="S", help="only the monitor's CPU time over S seconds"
    )
    args = parser.parse_args(argv)
    if args.monitor_only:
        return monitor_cpu(args.monitor_only)
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
