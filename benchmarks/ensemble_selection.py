"""Which ensemble selection rule tests best? Greedy on validation accuracy against greedy on validation
negative log-likelihood, the plain average and the best single member, on a finished `reproduce
--top-k` (or `tune --budget`) whose members kept their models (`runs:/<member run>/member`).

Each member's probabilities on the validation and test splits are computed once. Each rule then
chooses its weights on the validation split, as `convtune reproduce` would, and the script prints
the test accuracy of that choice. One validation split decides by a handful of images, so the rules
are also run on `--draws` bootstrap resamples of the validation split (the same resamples for every
rule): the mean and spread of the chosen ensembles' test accuracy, and how often a rule kept a single
member. The test split is read here to compare the rules, never to choose; convtune itself chooses
on validation only.

Run it in the folder of the study (its `mlflow.yml` or `.convtune/`), on an idle machine:

    python benchmarks/ensemble_selection.py                   # the newest ensemble run
    python benchmarks/ensemble_selection.py --run RUN_ID --draws 500
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from mlflow import MlflowClient
from torch import Tensor

from lightning_modules.config import DataConfig
from lightning_modules.data.datamodule import ImageDataModule
from search.reproduce.member import MEMBER_MODEL_PATH
from search.reproduce.selection import accuracy, best_single_index, choose_ensemble, mean_nll
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.model_store import InferenceModel, load_inference_model

Rule = Callable[[list[Tensor], Tensor], list[float]]


def _greedy(criterion: str, margin: float = 0.0) -> Rule:
    def rule(probabilities: list[Tensor], labels: Tensor) -> list[float]:
        choice = choose_ensemble(probabilities, labels, criterion=criterion, margin=margin)  # type: ignore[arg-type]
        return choice.weights

    return rule


def _average(probabilities: list[Tensor], labels: Tensor) -> list[float]:
    return [1 / len(probabilities)] * len(probabilities)


def _best_single(probabilities: list[Tensor], labels: Tensor) -> list[float]:
    best = best_single_index(probabilities, labels)
    return [1.0 if i == best else 0.0 for i in range(len(probabilities))]


RULES: dict[str, Rule] = {
    "greedy on accuracy (then NLL)": _greedy("accuracy"),
    "greedy on NLL (then accuracy)": _greedy("nll"),
    "greedy on accuracy if > 1 SE": _greedy("accuracy", 1.0),
    "greedy on accuracy if > 2 SE": _greedy("accuracy", 2.0),
    "greedy on NLL if > 2 SE": _greedy("nll", 2.0),
    "plain average": _average,
    "best single": _best_single,
}


@dataclass
class Split:
    probabilities: list[Tensor]  # one (N, classes) tensor per member
    labels: Tensor

    def take(self, rows: Tensor) -> Split:
        return Split([p[rows] for p in self.probabilities], self.labels[rows])

    def accuracy_of(self, weights: list[float]) -> float:
        mixed = sum(w * p for w, p in zip(weights, self.probabilities, strict=True))
        return accuracy(mixed, self.labels)  # type: ignore[arg-type]


def newest_ensemble_run(client: MlflowClient) -> str:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments,
        f"tags.`{v.TAG_ROLE}` = '{v.ROLE_ENSEMBLE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(
            "no finished ensemble run in this folder's tracking store; "
            "run `convtune reproduce --top-k` first."
        )
    return runs[0].info.run_id


def member_models(client: MlflowClient, run_id: str) -> tuple[list[str], list[InferenceModel]]:
    members = client.get_run(run_id).data.tags[v.TAG_ENSEMBLE_MEMBERS].split(",")
    models = []
    for member in members:
        model = load_inference_model(f"runs:/{member}/{MEMBER_MODEL_PATH}")
        assert isinstance(model, InferenceModel)
        models.append(model)
    return members, models


def splits(models: list[InferenceModel]) -> tuple[Split, Split]:
    description = models[0].description
    datamodule = ImageDataModule(DataConfig.model_validate(description.data), seed=description.seed)
    datamodule.setup()
    val = Split([m.predict(datamodule.val_images) for m in models], datamodule.val_labels)
    test = Split([m.predict(datamodule.test_images) for m in models], datamodule.test_labels)
    return val, test


def report(val: Split, test: Split, draws: int, seed: int) -> None:
    for index, (pv, pt) in enumerate(zip(val.probabilities, test.probabilities, strict=True)):
        print(
            f"member {index}: val acc {accuracy(pv, val.labels):.4f} nll {mean_nll(pv, val.labels):.4f}"
            f" | test acc {accuracy(pt, test.labels):.4f}"
        )
    generator = torch.Generator().manual_seed(seed)
    size = len(val.labels)
    resamples = [torch.randint(size, (size,), generator=generator) for _ in range(draws)]
    heading = f"{draws} validation resamples: test mean, sd, min, one member"
    print(f"\n{'rule':32} {'val':>7} {'test':>7} | {heading}")
    for name, rule in RULES.items():
        weights = rule(val.probabilities, val.labels)
        tested = []
        singles = 0
        for rows in resamples:
            drawn = val.take(rows)
            chosen = rule(drawn.probabilities, drawn.labels)
            singles += sum(w > 0 for w in chosen) == 1
            tested.append(test.accuracy_of(chosen))
        print(
            f"{name:32} {val.accuracy_of(weights):7.4f} {test.accuracy_of(weights):7.4f} | "
            f"{statistics.mean(tested):.4f} {statistics.pstdev(tested):.4f} {min(tested):.4f} "
            f"{singles / draws:6.0%}   weights {', '.join(f'{w:.2f}' for w in weights)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="the ensemble's run id (default: the newest finished ensemble run)")
    parser.add_argument("--draws", type=int, default=200, help="bootstrap resamples of the validation split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = load_settings()
    client = MlflowClient(settings.tracking_uri, settings.registry_uri)
    run_id = args.run or newest_ensemble_run(client)
    members, models = member_models(client, run_id)
    print(f"ensemble run {run_id}: {len(members)} members ({', '.join(members)})")
    val, test = splits(models)
    report(val, test, args.draws, args.seed)


if __name__ == "__main__":
    main()
