"""What a convtune trial costs on top of the training it does.

Trains the same network on the same data, with the same albumentations pipeline and the same number
of steps, twice: once as a bare PyTorch loop (DataLoader + model + AdamW, nothing else) and once as a
real convtune trial (`search.study.objective.Objective`: Lightning Trainer, ClassifierModule, pruning
callback, MLflow child run with params, per-epoch metrics and artifacts). Prints both training
throughputs, their ratio (target >= 0.85) and the trial's fixed cost: everything the trial spends
outside its training and validation loops (target < 1 s).

    python benchmarks/overhead.py                    # Fashion-MNIST, 100 steps of 256, 3 repeats
    python benchmarks/overhead.py --dataset digits --steps 10 --repeats 1   # a smoke run

The machine's load average is printed with every figure: on a shared machine, compare figures taken
at similar load only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import search.tracking.artifacts
from lightning_modules.data import ImageDataModule
from lightning_modules.data.loaders import AugmentedDataset, resolve_num_workers, seed_worker
from lightning_modules.models.registry import model_from_config
from search.experiment.spec import ExperimentSpec, validate_experiment
from search.study.objective import Objective, TrialSettings
from search.tracking import Tracker, TrackingSettings

AUGMENT = [{"HorizontalFlip": {"p": 0.5}}, {"Affine": {"translate_percent": [-0.08, 0.08], "p": 0.5}}]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


def experiment(
    dataset: str, steps: int, batch_size: int, augment: bool, workers: int | None = None
) -> ExperimentSpec:
    """A one-epoch experiment whose train split holds exactly `steps` batches."""
    total = {"fashion-mnist": 54_000, "digits": 1_438}[dataset]  # train images after the val split
    fraction = min(1.0, (steps * batch_size + batch_size // 2) / total)
    raw: dict[str, Any] = {
        "name": "overhead",
        "seed": 0,
        "data": {
            "dataset": dataset,
            "val_fraction": 0.1 if dataset == "fashion-mnist" else 0.2,
            "batch_size": batch_size,
            "train_fraction": fraction,
            "num_workers": "auto" if workers is None else workers,
            # like the bare loop: per image in DataLoader workers (batched augmentation would make the
            # trial cheaper than its bare loop; benchmarks/augment_backends.py compares the two)
            "augment_backend": "albumentations",
        },
        "augment": AUGMENT if augment else [],
        # 421,738 parameters on 28x28 inputs: the 2-conv net of the issue
        "model": {"name": "convnet", "channels": [32, 64], "kernel_size": 3, "hidden": [128]},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        "trainer": {"max_epochs": 1},
        "search": {
            "n_trials": 1,
            "sampler": {"name": "random", "seed": 0},
            "pruner": {"name": "median"},
            "space": {"optim.lr": {"float": [1e-3, 1e-3]}},
        },
    }
    return validate_experiment(raw, source="overhead")


def augmentation_rate(datamodule: ImageDataModule, count: int = 3000) -> float | None:
    """Images per second the albumentations pipeline (plus tensor conversion) runs at on one core."""
    if datamodule.transform is None:
        return None
    import cv2

    cv2.setNumThreads(1)
    dataset = AugmentedDataset(
        datamodule.train_images[:count], datamodule.train_labels[:count], datamodule.transform
    )
    started = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return len(dataset) / (time.perf_counter() - started)


@dataclass
class Result:
    images: int
    train_seconds: float
    fixed_seconds: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def img_s(self) -> float:
        return self.images / self.train_seconds


def bare_loop(spec: ExperimentSpec, datamodule: ImageDataModule) -> Result:
    """The reference: a plain PyTorch loop over a DataLoader that runs the same pipeline per sample."""
    torch.manual_seed(spec.seed)
    images, labels = datamodule.train_images, datamodule.train_labels
    model = model_from_config(
        spec.model,
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
        image_size=datamodule.image_size,
    ).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.optim.lr, weight_decay=spec.optim.weight_decay)
    mean = torch.tensor(datamodule.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(datamodule.std).view(1, -1, 1, 1) * 255
    workers = resolve_num_workers(spec.data.num_workers)
    if datamodule.transform is not None:
        dataset: Any = AugmentedDataset(images, labels, datamodule.transform, seed=spec.seed)
        loader: Any = DataLoader(
            dataset,
            batch_size=spec.data.batch_size,
            shuffle=True,
            num_workers=workers,
            worker_init_fn=seed_worker if workers else None,
        )
    else:
        loader = DataLoader(
            torch.utils.data.TensorDataset(images, labels), batch_size=spec.data.batch_size, shuffle=True
        )
    model.train()
    seen = 0
    started = time.perf_counter()
    for batch_images, batch_labels in loader:
        x = ((batch_images.float() - mean) / std).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), batch_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += batch_labels.shape[0]
    return Result(seen, time.perf_counter() - started)


class LoopTimer(pl.Callback):
    """Timestamps of the Trainer's phases, to split a trial into training, validation and the rest."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.images = 0

    def _mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark("fit_start")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark("train_start")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        self.images += int(batch[1].shape[0])

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark("val_start")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark("val_end")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark("fit_end")


def convtune_trial(
    spec: ExperimentSpec, tracker: Tracker, study: optuna.Study, parent_run_id: str, artifacts: bool
) -> Result:
    """One real trial through `Objective`, timed from the call to its return."""
    timer = LoopTimer()
    datamodule_shape = (1, (28, 28)) if spec.data.dataset == "fashion-mnist" else (1, (8, 8))
    spent: list[float] = []
    settings = TrialSettings(device="cpu", artifacts=artifacts, artifact_writers=artifact_writers(spent))
    settings.extra_callbacks = [lambda trial: timer]
    objective = Objective(
        spec,
        tracker,
        study_name=study.study_name,
        parent_run_id=parent_run_id,
        data_shape=datamodule_shape,
        settings=settings,
    )
    trial = study.ask()
    started = time.perf_counter()
    study.tell(trial, objective(trial))
    total = time.perf_counter() - started
    marks = timer.marks
    train = marks["val_start"] - marks["train_start"]
    validation = marks["val_end"] - marks["val_start"]
    parts = {
        "setup (sample, MLflow run, build, Trainer)": marks["fit_start"] - started,
        "fit start -> first epoch": marks["train_start"] - marks["fit_start"],
        "after validation (epoch logging, fit end, finish), without artifacts": started
        + total
        - marks["val_end"]
        - sum(spent),
        "artifact writers (pictures, tables)": sum(spent),
    }
    return Result(timer.images, train, total - train - validation, parts)


def artifact_writers(spent: list[float]) -> list[Any]:
    """The writers `convtune tune` uses (`search.tracking.artifacts.trial_writers`), each timed
    into `spent`."""
    writers = getattr(search.tracking.artifacts, "trial_writers", None)

    def timed(write: Any) -> Any:
        def run(*args: Any) -> None:
            started = time.perf_counter()
            write(*args)
            spent.append(time.perf_counter() - started)

        return run

    return [timed(write) for write in writers()] if callable(writers) else []


def open_tracking(folder: Path) -> Tracker:
    store = f"sqlite:///{folder / 'mlflow.db'}"
    return Tracker(TrackingSettings(store, store, str(folder / "mlartifacts")))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["fashion-mnist", "digits"], default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="bare/trial pairs, interleaved")
    parser.add_argument("--no-augment", action="store_true", help="train on the plain images")
    parser.add_argument("--no-artifacts", action="store_true", help="trials skip their pictures and tables")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: the data config's auto)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    spec = experiment(args.dataset, args.steps, args.batch_size, not args.no_augment, args.workers)
    datamodule = ImageDataModule(spec.data, spec.augment, seed=spec.seed)
    datamodule.setup()  # decodes the dataset once; trials in the same process reuse it
    print(
        f"{args.dataset}: {len(datamodule.train_labels)} training images per run "
        f"({args.steps} steps of {args.batch_size}), augment={'none' if args.no_augment else AUGMENT}, "
        f"torch threads {torch.get_num_threads()}, "
        f"DataLoader workers {resolve_num_workers(spec.data.num_workers)}"
    )
    bare: list[Result] = []
    trials: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="convtune-overhead-") as folder:
        tracker = open_tracking(Path(folder))
        study = optuna.create_study(study_name="overhead", direction="maximize")
        parent = tracker.study_run(study.study_name)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for repeat in range(args.repeats):
            bare.append(bare_loop(spec, datamodule))
            print(f"[{repeat}] bare loop      {bare[-1].img_s:8.0f} img/s   ({load()})")
            trials.append(convtune_trial(spec, tracker, study, parent, not args.no_artifacts))
            result = trials[-1]
            print(
                f"[{repeat}] convtune trial {result.img_s:8.0f} img/s   fixed cost "
                f"{result.fixed_seconds:.3f} s   ({load()})"
            )
            for name, seconds in result.parts.items():
                print(f"      {name}: {seconds:.3f} s")
    # after the runs: OpenCV's thread pool, once started here, deadlocks DataLoader workers forked later
    augment_rate = augmentation_rate(datamodule)
    if augment_rate is not None:
        print(f"albumentations per sample: {augment_rate:.0f} img/s on one core   ({load()})")
    bare_img_s = statistics.median(r.img_s for r in bare)
    trial_img_s = statistics.median(r.img_s for r in trials)
    # the first trial of a process also pays imports and first-use costs; a study pays them once
    warm = trials[1:] or trials
    fixed = statistics.median(r.fixed_seconds for r in warm)
    ratio = trial_img_s / bare_img_s
    print(f"median bare loop:      {bare_img_s:.0f} img/s")
    print(f"median convtune trial: {trial_img_s:.0f} img/s")
    if augment_rate is not None:
        print(f"augmentation cost at the trial's rate: {trial_img_s / augment_rate:.2f} of a core")
    print(f"ratio trial / bare:    {ratio:.3f}   (target >= 0.85: {'met' if ratio >= 0.85 else 'missed'})")
    print(
        f"fixed cost per trial:  {fixed:.3f} s median of warm trials, first trial "
        f"{trials[0].fixed_seconds:.3f} s   (target < 1 s: {'met' if fixed < 1 else 'missed'})   ({load()})"
    )
    return {"bare_img_s": bare_img_s, "trial_img_s": trial_img_s, "ratio": ratio, "fixed_s": fixed}


if __name__ == "__main__":
    main()
