"""`search.reproduce.selection`: decisions on the validation split: test-time augmentation, ensembles."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.config import EvaluateConfig
from search.reproduce.selection import (
    AveragingReport,
    accuracy,
    beats_by,
    choose_ensemble,
    choose_tta,
    greedy_counts,
    mean_nll,
)
from tests.helpers.tiny_runs import untrained_model


def _one_hot(classes: list[int], confidence: float = 0.9) -> torch.Tensor:
    out = torch.full((len(classes), 3), (1 - confidence) / 2)
    out[torch.arange(len(classes)), torch.tensor(classes)] = confidence
    return out


def test_greedy_selection_with_replacement_picks_complementary_members() -> None:
    labels = torch.tensor([0, 1, 2, 0])
    good = _one_hot([0, 1, 2, 1])  # 3 of 4
    poor = _one_hot([1, 1, 1, 0], confidence=0.5)  # right on the last image only
    same = good.clone()
    counts = greedy_counts([good, poor, same], labels, rounds=10)
    assert counts[0] >= 1 and sum(counts) <= 10
    choice = choose_ensemble([good, poor, same], labels)
    assert choice.method in ("greedy", "average") and abs(sum(choice.weights) - 1) < 1e-9
    assert choice.accuracy >= choice.scores["best single"] - 1e-9


def test_plain_average_wins_ties() -> None:
    labels = torch.tensor([0, 1, 2])
    probabilities = [_one_hot([0, 1, 2]), _one_hot([0, 1, 2])]
    choice = choose_ensemble(probabilities, labels)
    assert choice.method == "average" and choice.weights == [0.5, 0.5]


def test_the_nll_criterion_trades_an_image_for_a_better_calibrated_mix() -> None:
    labels = torch.tensor([0, 0, 0, 0])
    sharp = torch.tensor([[0.99, 0.005, 0.005]] * 2 + [[0.5, 0.45, 0.05], [0.005, 0.99, 0.005]])
    soft = torch.tensor([[0.6, 0.2, 0.2]] * 2 + [[0.3, 0.6, 0.1], [0.5, 0.3, 0.2]])
    by_accuracy = choose_ensemble([sharp, soft], labels, criterion="accuracy")
    by_nll = choose_ensemble([sharp, soft], labels, criterion="nll")
    assert by_accuracy.accuracy == 0.75 and by_nll.accuracy == 0.5, "each maximizes its own criterion"
    assert by_nll.nll < by_accuracy.nll
    candidates = [sharp, soft, (sharp + soft) / 2]
    assert by_nll.nll <= min(mean_nll(p, labels) for p in candidates) + 1e-9
    with pytest.raises(ValueError, match="criterion must be one of accuracy, nll, but got criterion='auc'"):
        choose_ensemble([sharp], labels, criterion="auc")  # type: ignore[arg-type]


def _right_on(correct: list[bool]) -> torch.Tensor:
    """Probabilities over 2 classes for images of class 0: right (0.6 on class 0) or wrong."""
    return torch.tensor([[0.6, 0.4] if right else [0.4, 0.6] for right in correct])


def test_beats_by_is_mcnemars_statistic_for_accuracy() -> None:
    labels = torch.zeros(100, dtype=torch.long)
    challenger = _right_on([True] * 90 + [False] * 10)
    incumbent = _right_on([True] * 85 + [False] * 15)  # b = 5 images only the challenger gets right, c = 0
    differences = torch.tensor([0.0] * 85 + [1.0] * 5 + [0.0] * 10)
    expected = float(differences.mean() / (differences.std() / 10))
    assert beats_by(challenger, incumbent, labels, "accuracy") == pytest.approx(expected)
    assert 2.0 < expected < 2.3  # about (b - c) / sqrt(b + c) = 2.24
    assert beats_by(incumbent, challenger, labels, "accuracy") == pytest.approx(-expected)
    assert beats_by(challenger, challenger, labels, "accuracy") == 0.0


def test_with_a_margin_greedy_must_beat_the_plain_average_by_more_than_noise() -> None:
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    best = _one_hot([0, 0, 0, 0, 0, 0, 0, 0, 1, 2])  # 8 of 10
    weak = _one_hot([1, 2, 1, 0, 0, 0, 0, 0, 1, 2], confidence=0.95)  # 5 of 10, sure where wrong
    anywhere = choose_ensemble([best, weak], labels, criterion="accuracy")
    assert anywhere.method == "greedy" and anywhere.weights == [1.0, 0.0], "greedy kept the best alone"
    assert anywhere.scores["greedy"] > anywhere.scores["average"]
    strict = choose_ensemble([best, weak], labels, criterion="accuracy", margin=2.0)
    assert strict.method == "average" and strict.weights == [0.5, 0.5]
    assert 0 < strict.greedy_lead < 2.0 and strict.margin == 2.0
    with pytest.raises(ValueError, match="margin must be at least 0, but got margin=-1"):
        choose_ensemble([best], labels, margin=-1)


def test_tta_is_kept_only_when_it_raises_the_validation_accuracy() -> None:
    model = untrained_model([])
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    labels = model.predict(images).argmax(dim=1)  # the plain model is right on every image
    auto = choose_tta(model, EvaluateConfig(tta=["HorizontalFlip"]), images, labels)
    assert auto.plain_accuracy == 1.0 and auto.tta_accuracy is not None
    assert auto.kept == (auto.tta_accuracy > 1.0) and not auto.kept and auto.model.tta == []
    always = choose_tta(model, EvaluateConfig(tta=["HorizontalFlip"], tta_keep="always"), images, labels)
    assert always.kept and always.model.tta == ["HorizontalFlip"]
    flipped_labels = model.with_tta(["HorizontalFlip"]).predict(images).argmax(dim=1)
    favoured = choose_tta(model, EvaluateConfig(tta=["HorizontalFlip"]), images, flipped_labels)
    assert favoured.kept == (favoured.tta_accuracy > favoured.plain_accuracy)  # type: ignore[operator]
    assert choose_tta(model, EvaluateConfig(), images, labels).metrics() == {}


def test_the_averaging_report_names_both_weights_and_the_difference_in_points() -> None:
    report = AveragingReport("ema", "ema", untrained_model([]), raw_accuracy=0.9345, kept_accuracy=0.9337)
    assert report.metrics() == {"val/acc_raw": 0.9345, "val/acc_averaged": 0.9337}
    assert report.describe() == (
        "weight averaging (ema) on the validation split: 0.9337 with the kept ema weights, "
        "0.9345 with the final raw ones (-0.08 points)"
    )


def test_the_validation_split_picks_how_many_of_the_listed_transforms_to_keep() -> None:
    model = untrained_model([])
    images = torch.randint(0, 256, (60, 1, 8, 8), dtype=torch.uint8)
    listed = ["HorizontalFlip", "Affine(translate_px={x: 1, y: 0})"]
    flip_labels = model.with_tta(listed[:1]).predict(images).argmax(dim=1)  # the first prefix is right on all
    choice = choose_tta(model, EvaluateConfig(tta=listed), images, flip_labels)
    assert choice.prefixes[0] == 1.0 and choice.transforms == listed[:1]  # a tie goes to fewer transforms
    assert choice.kept == (choice.plain_accuracy < 1.0) and choice.model.tta == (
        listed[:1] if choice.kept else []
    )
    for count, value in enumerate(choice.prefixes, start=1):  # the shared logits agree with the model's own
        assert value == accuracy(model.with_tta(listed[:count]).predict(images), flip_labels)
    both_labels = model.with_tta(listed).predict(images).argmax(dim=1)
    both = choose_tta(model, EvaluateConfig(tta=listed), images, both_labels)
    assert both.transforms == (listed[:1] if both.prefixes[0] == 1.0 else listed)
    assert "with the first N listed transforms, N 1: " in both.describe()
    assert both.metrics() == {
        "val/acc_plain": both.plain_accuracy,
        "val/acc_tta": both.tta_accuracy,
        **{f"val/acc_tta_{count}": value for count, value in enumerate(both.prefixes, start=1)},
    }
    always = choose_tta(model, EvaluateConfig(tta=listed, tta_keep="always"), images, flip_labels)
    assert always.kept and always.model.tta == listed


@pytest.mark.parametrize("labels_from", [[], ["HorizontalFlip"]])
def test_the_chosen_models_validation_probabilities_are_what_it_predicts(labels_from: list[str]) -> None:
    model = untrained_model([])
    images = torch.randint(
        0, 256, (50, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    labels = model.with_tta(labels_from).predict(images).argmax(dim=1)
    for config in (
        EvaluateConfig(),
        EvaluateConfig(tta=["HorizontalFlip"]),
        EvaluateConfig(tta=["HorizontalFlip"], tta_keep="always"),
    ):
        choice = choose_tta(model, config, images, labels)
        assert choice.probabilities is not None
        torch.testing.assert_close(choice.probabilities, choice.model.predict(images))
