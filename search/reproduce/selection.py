"""Decisions taken after training, on the validation split only: test-time augmentation, ensembles.

Nothing here reads the test split; `search.reproduce.evaluate.final_test` does, once the decisions are taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from lightning_modules.config import EvaluateConfig
from lightning_modules.tta import view
from search.tracking.model_store import PREDICT_BATCH, InferenceModel, channels_last

Criterion = Literal["accuracy", "nll"]
CRITERIA: tuple[Criterion, ...] = ("accuracy", "nll")


def per_image(probabilities: Tensor, labels: Tensor, criterion: Criterion) -> Tensor:
    """Each image's score, higher is better: 1 when classified right, else 0 (`accuracy`), or the
    log-probability of its true class (`nll`)."""
    labels = labels.cpu().long()
    if criterion == "accuracy":
        return (probabilities.argmax(dim=1) == labels).float()
    return probabilities[torch.arange(len(labels)), labels].clamp_min(1e-12).log()


def accuracy(probabilities: Tensor, labels: Tensor) -> float:
    return float(per_image(probabilities, labels, "accuracy").mean()) if len(labels) else 0.0


def mean_nll(probabilities: Tensor, labels: Tensor) -> float:
    """Negative log-likelihood of the true classes (the tie-break between equal accuracies)."""
    return float(-per_image(probabilities, labels, "nll").mean()) if len(labels) else 0.0


def best_single_index(probabilities: list[Tensor], labels: Tensor) -> int:
    """The member with the highest accuracy (the first among equals)."""
    singles = [accuracy(p, labels) for p in probabilities]
    return max(range(len(singles)), key=lambda i: (singles[i], -i))


@dataclass(frozen=True)
class TTAChoice:
    """Whether test-time augmentation is kept, and the validation accuracies that decided it.

    `transforms` is the best of the configured list's prefixes (the first transform, the first two, ...,
    all of them), `tta_accuracy` its validation accuracy, and `prefixes` each prefix's accuracy."""

    model: InferenceModel
    transforms: list[str]
    kept: bool
    plain_accuracy: float
    tta_accuracy: float | None  # None when no transforms were configured
    prefixes: tuple[float, ...] = ()
    probabilities: Tensor | None = None  # the chosen model's on the validation split

    def metrics(self) -> dict[str, float]:
        """The plain and chosen accuracies, and with several transforms listed each prefix's
        (`val/acc_tta_2`: with the first two), so each transform's share can be read off the run."""
        if self.tta_accuracy is None:
            return {}
        chosen = {"val/acc_plain": self.plain_accuracy, "val/acc_tta": self.tta_accuracy}
        if len(self.prefixes) < 2:
            return chosen
        return chosen | {f"val/acc_tta_{count}": value for count, value in enumerate(self.prefixes, start=1)}

    def describe(self) -> str:
        if self.tta_accuracy is None:
            return "no test-time augmentation configured"
        verdict = "kept" if self.kept else "left out"
        line = (
            f"test-time augmentation ({', '.join(self.transforms)}) {verdict}: validation accuracy "
            f"{self.tta_accuracy:.4f} with it, {self.plain_accuracy:.4f} without"
        )
        if len(self.prefixes) < 2:
            return line
        tried = ", ".join(f"{count}: {value:.4f}" for count, value in enumerate(self.prefixes, start=1))
        return f"{line} (with the first N listed transforms, N {tried})"


def choose_tta(model: InferenceModel, config: EvaluateConfig, images: Tensor, labels: Tensor) -> TTAChoice:
    """`model` with the prefix of `config.tta` (the first transform, the first two, ...) that gives
    the highest validation accuracy, when that beats the plain model (`tta_keep: auto`; a tie goes to
    fewer transforms, each costs a forward pass), or with all of them (`tta_keep: always`)."""
    plain = model.with_tta([])
    views = view_logits(plain, [[], *([name] for name in config.tta)], images)
    plain_accuracy = accuracy(views[0], labels)
    if not config.tta:
        return TTAChoice(plain, [], False, plain_accuracy, None, probabilities=views[0].softmax(dim=1))
    prefixes = tuple(
        accuracy(torch.stack(views[: count + 1]).mean(dim=0), labels) for count in range(1, len(views))
    )
    if config.tta_keep == "always":
        count = len(config.tta)
    else:
        count = 1 + max(range(len(prefixes)), key=lambda index: (prefixes[index], -index))
    transforms = list(config.tta[:count])
    kept = config.tta_keep == "always" or prefixes[count - 1] > plain_accuracy
    chosen = model.with_tta(transforms) if kept else plain
    logits = torch.stack(views[: count + 1]).mean(dim=0) if kept else views[0]  # as `chosen` averages them
    return TTAChoice(
        chosen, transforms, kept, plain_accuracy, prefixes[count - 1], prefixes, logits.softmax(dim=1)
    )


@torch.inference_mode()
def view_logits(
    model: InferenceModel, views: list[list[str]], images: Tensor, batch: int = PREDICT_BATCH
) -> list[Tensor]:
    """`model`'s float logits on `images` under each view (`[]`: the images themselves, `[name]`: one
    transform of them), computed once each so that every prefix's average costs nothing more."""
    device = model.mean.device
    outputs: list[list[Tensor]] = [[] for _ in views]
    for start in range(0, len(images), batch):
        chunk = channels_last(model.normalize(images[start : start + batch].to(device)))
        for index, names in enumerate(views):
            x = view(names[0], chunk, model.black) if names else chunk
            outputs[index].append(model.network(x).float().cpu())
    return [torch.cat(parts) if parts else torch.zeros(0, len(model.class_names)) for parts in outputs]


@dataclass(frozen=True)
class AveragingReport:
    """What weight averaging added, measured on the validation split without test-time augmentation:
    the kept weights (the best epoch's, averaged when that epoch validated the average) against the
    final raw weights, what training without averaging would have ended with. A measurement, not a
    choice: the kept weights stay."""

    kind: str  # trainer.weight_averaging.kind: "ema" or "swa"
    kept: str  # which weights are kept: "ema", "swa" or "raw" (the best epoch came before averaging)
    raw_model: InferenceModel
    raw_accuracy: float
    kept_accuracy: float

    def metrics(self) -> dict[str, float]:
        return {"val/acc_raw": self.raw_accuracy, "val/acc_averaged": self.kept_accuracy}

    def describe(self) -> str:
        change = 100 * (self.kept_accuracy - self.raw_accuracy)
        return (
            f"weight averaging ({self.kind}) on the validation split: {self.kept_accuracy:.4f} with the "
            f"kept {self.kept} weights, {self.raw_accuracy:.4f} with the final raw ones "
            f"({change:+.2f} points)"
        )


@dataclass(frozen=True)
class EnsembleChoice:
    """The members' weights chosen on the validation split, how, and what each candidate scored."""

    method: str  # "greedy" (Caruana's selection with replacement) or "average"
    weights: list[float]  # one per member, summing to 1 (greedy: how often it was picked / rounds)
    accuracy: float
    nll: float
    scores: dict[str, float]  # validation accuracy of each candidate: "average", "greedy", "best single"
    nll_scores: dict[str, float] = field(default_factory=dict)  # their validation NLL, likewise
    criterion: str = "accuracy"  # what chose it: "accuracy" (then NLL) or "nll" (then accuracy)
    margin: float = 0.0  # the standard errors by which greedy had to beat the average (0: any gain)
    greedy_lead: float = 0.0  # by how many standard errors greedy beat the average (negative: trailed)

    @property
    def used(self) -> list[int]:
        """The members with a weight above zero."""
        return [index for index, weight in enumerate(self.weights) if weight > 0]


def _score(probabilities: Tensor, labels: Tensor, criterion: Criterion = "accuracy") -> tuple[float, float]:
    """What selection maximizes: accuracy, then the lower negative log-likelihood (`accuracy`), or
    the lower negative log-likelihood, then accuracy (`nll`)."""
    correct, nll = accuracy(probabilities, labels), -mean_nll(probabilities, labels)
    return (correct, nll) if criterion == "accuracy" else (nll, correct)


def greedy_counts(
    probabilities: list[Tensor], labels: Tensor, rounds: int, criterion: Criterion = "accuracy"
) -> list[int]:
    """Caruana et al. (2004), ensemble selection with replacement: start empty, add in each round
    the member whose addition scores best, keep the best-scoring prefix of the rounds (the earliest
    among equals: the fewest picks). The first pick is the best single member."""
    counts = [0] * len(probabilities)
    total = torch.zeros_like(probabilities[0])
    history: list[tuple[tuple[float, float], list[int]]] = []
    for picked in range(1, rounds + 1):
        candidates = [_score((total + p) / picked, labels, criterion) for p in probabilities]
        best = max(range(len(candidates)), key=lambda i: (candidates[i], -i))
        counts[best] += 1
        total = total + probabilities[best]
        history.append((candidates[best], list(counts)))
    best_score = max(score for score, _ in history)
    return next(counts for score, counts in history if score == best_score)


def choose_ensemble(
    probabilities: list[Tensor],
    labels: Tensor,
    *,
    rounds: int | None = None,
    criterion: Criterion = "accuracy",
    margin: float = 0.0,
) -> EnsembleChoice:
    """Greedy selection with replacement against the plain average of all members, both scored on
    the validation split by `criterion` (see `_score`); a tie goes to the plain average, which fits
    the validation split less. With `margin` > 0 greedy must beat the average by more than `margin`
    standard errors of their paired per-image difference (`beats_by`). `rounds` defaults to 4 per
    member (at least 10)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, but got criterion={criterion!r}.")
    if not margin >= 0:
        raise ValueError(f"margin must be at least 0, but got margin={margin}.")
    if not probabilities:
        raise ValueError("choose_ensemble needs the validation probabilities of at least one member.")
    members = len(probabilities)
    counts = greedy_counts(probabilities, labels, rounds or max(10, 4 * members), criterion)
    greedy_weights = [count / sum(counts) for count in counts]
    greedy = sum(w * p for w, p in zip(greedy_weights, probabilities, strict=True))
    average = sum(probabilities) / members
    candidates = {
        "average": average,
        "greedy": greedy,
        "best single": probabilities[best_single_index(probabilities, labels)],
    }
    scores = {name: accuracy(p, labels) for name, p in candidates.items()}
    nll_scores = {name: mean_nll(p, labels) for name, p in candidates.items()}
    lead = beats_by(greedy, average, labels, criterion)
    if margin > 0:
        greedy_wins = lead > margin
    else:
        greedy_wins = _score(greedy, labels, criterion) > _score(average, labels, criterion)
    method, weights = ("greedy", greedy_weights) if greedy_wins else ("average", [1 / members] * members)
    return EnsembleChoice(
        method, weights, scores[method], nll_scores[method], scores, nll_scores, criterion, margin, lead
    )


def beats_by(challenger: Tensor, incumbent: Tensor, labels: Tensor, criterion: Criterion) -> float:
    """How many standard errors `challenger` scores above `incumbent` on the same images: the mean
    of their per-image differences over its standard error (for accuracy, about (b - c) / sqrt(b + c)
    with b and c the images only one of them gets right, McNemar's statistic); 0 when they agree on
    every image, negative when the incumbent scores higher."""
    differences = per_image(challenger, labels, criterion) - per_image(incumbent, labels, criterion)
    differences = differences.double()
    if len(differences) < 2:
        return 0.0
    error = float(differences.std()) / len(differences) ** 0.5
    mean = float(differences.mean())
    return mean / error if error > 0 else 0.0
