"""Probe one network of an experiment's space without a study: what it costs, and what it scores.

A Pareto target is only reachable if the space holds a network that meets it. This script measures
one config (the experiment's base config with `--set` overrides) the way `benchmarks/pareto_front.py`
measures reproduced models: parameters, multiply-adds and latency per image at batch 1 and 64
(float32, one CPU thread, timed in turn with the headline champion in `--rounds` rounds), as ratios
to it. Unless `--cost-only`, it then trains the config as `convtune reproduce` would (deterministic,
`--epochs` on `--train-fraction` of the training split, the best validation epoch kept) and tests it
once. With `--set 'evaluate.tta=[HorizontalFlip]'` the validation split decides whether test-time
augmentation is kept, as in `reproduce`, and the test accuracy with and without it is printed beside
the chosen one.
With `--teacher MODEL` the config is taught as `convtune reproduce --teacher` teaches it.

    python benchmarks/probe_config.py experiments/fashion_mnist_pareto.yaml --cost-only \\
        --set 'model.channels=[32,48,64]' --set model.convs_per_block=2 --set model.separable=true \\
        --set model.global_pool=true
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pareto_front  # the benchmark beside this one: the same cost measurement

from lightning_modules.models.registry import model_from_config
from search.experiment.dotted import config_from_params, parse_override
from search.experiment.spec import TeacherConfig, load_experiment
from search.reproduce.evaluate import final_test
from search.reproduce.retrain import to_inference_model, train
from search.reproduce.selection import choose_tta
from search.reproduce.teacher import Teacher, TeacherReport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-fraction", type=float, default=1.0)
    parser.add_argument("--cost-only", action="store_true", help="measure the cost, do not train")
    parser.add_argument("--teacher", metavar="MODEL", help="distil from MODEL, as reproduce --teacher")
    parser.add_argument("--teacher-weight", type=float, default=0.5, metavar="W")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of timing, the probe in turn with the champion (default 5)",
    )
    args = parser.parse_args(argv)
    spec = load_experiment(args.experiment)
    params = dict(parse_override(text) for text in args.overrides)
    config = config_from_params(
        spec, {"data.train_fraction": args.train_fraction, "trainer.max_epochs": args.epochs, **params}
    )
    network = model_from_config(
        config.model, in_channels=1, num_classes=10, image_size=pareto_front.SHAPE[1:]
    )
    champion, probe = pareto_front.interleaved(
        [pareto_front.headlines()[0], pareto_front.candidate("probe", network.eval(), float("nan"))],
        rounds=args.rounds,
    )
    batch1, batch64 = probe.speedups(champion)
    report: dict[str, object] = {
        "overrides": params,
        "params": probe.params,
        "macs": probe.macs,
        "latency_ms": round(probe.latency_ms, 4),
        "latency_ms_batch64": round(probe.latency_ms_batch, 4),
        "params_over_champion": round(probe.params / champion.params, 4),
        "speedup_batch1": round(batch1, 2),
        "speedup_batch64": round(batch64, 2),
    }
    if not args.cost_only:
        started = time.perf_counter()
        taught: list[TeacherReport] = []
        teacher = None
        if args.teacher:
            teacher = Teacher.load(TeacherConfig(model=args.teacher, weight=args.teacher_weight))
        parts, best, weights, _raw = train(
            config, spec.search.metric, spec.search.resolved_direction,
            prepare=None if teacher is None else lambda parts: taught.append(teacher.teach(parts.datamodule)),
        )  # fmt: skip
        report["train_seconds"] = round(time.perf_counter() - started)
        if taught:
            report["teacher"] = args.teacher
            report["teacher_weight"] = args.teacher_weight
            report["teacher_val_acc"] = taught[0].val_accuracy
            report["teacher_seconds"] = round(taught[0].seconds, 1)
        report["best_val"] = best.best_value
        report["best_epoch"] = best.best_epoch
        report["weights"] = weights
        data = parts.datamodule
        model = to_inference_model(parts, config, {"probe": "benchmarks/probe_config.py"})
        tta = choose_tta(model, config.evaluate, data.val_images, data.val_labels)  # validation decides
        tested, variants = final_test(tta.model, data, tta)
        report["tta"] = tta.describe()
        report["test_acc"] = tested.accuracy
        report |= {key.replace("/", "_"): value for key, value in variants.items()}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
