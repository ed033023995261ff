"""`search.reproduce.evaluate`: the test split, read once: a reproduction's final test and
`convtune evaluate` of a stored model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightning_modules.config import EvaluateConfig
from lightning_modules.data import load_dataset
from search.errors import ConfigError
from search.inspect.evaluation import evaluate_model
from search.reproduce.evaluate import evaluate_on_dataset, final_test
from search.reproduce.selection import AveragingReport, choose_tta
from tests.helpers.tiny_runs import untrained_model


def _split() -> SimpleNamespace:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8, generator=generator)
    return SimpleNamespace(test_images=images, test_labels=torch.arange(30) % 10)


def test_the_final_test_reports_both_variants_only_when_tta_was_considered() -> None:
    model, data = untrained_model([]), _split()
    test, variants = final_test(model, data)  # type: ignore[arg-type]
    assert variants == {} and test.total == 30
    assert test.accuracy == evaluate_model(model, data.test_images, data.test_labels).accuracy
    always = EvaluateConfig(tta=["HorizontalFlip"], tta_keep="always")
    kept = choose_tta(model, always, data.test_images[:4], data.test_labels[:4])
    test, variants = final_test(kept.model, data, kept)  # type: ignore[arg-type]
    plain = evaluate_model(model, data.test_images, data.test_labels).accuracy
    assert variants == {"test/acc_tta": test.accuracy, "test/acc_plain": plain}
    none = choose_tta(model, EvaluateConfig(), data.test_images[:4], data.test_labels[:4])
    assert final_test(none.model, data, none)[1] == {}  # type: ignore[arg-type]


def test_under_weight_averaging_the_kept_and_the_raw_weights_are_both_tested_without_tta() -> None:
    kept, raw, data = untrained_model([]), untrained_model([]), _split()
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in raw.network.parameters():
            parameter.add_(torch.randn_like(parameter))
    data.test_labels = raw.predict(data.test_images).argmax(dim=1)  # what only the raw weights get right
    always = EvaluateConfig(tta=["HorizontalFlip"], tta_keep="always")
    tta = choose_tta(kept, always, data.test_images[:4], data.test_labels[:4])
    averaging = AveragingReport("ema", "ema", raw, raw_accuracy=0.5, kept_accuracy=0.6)
    _, variants = final_test(tta.model, data, tta, averaging)  # type: ignore[arg-type]
    accuracy_of = lambda model: evaluate_model(model, data.test_images, data.test_labels).accuracy  # noqa: E731
    assert variants["test/acc_averaged"] == accuracy_of(kept) == variants["test/acc_plain"]
    assert variants["test/acc_raw"] == accuracy_of(raw) == 1.0 > accuracy_of(kept)


def test_a_saved_model_is_evaluated_on_its_datasets_test_split(tmp_path: Path) -> None:
    model = untrained_model([])
    path = model.save(tmp_path / "model.pt")
    evaluation, dataset = evaluate_on_dataset(str(path))
    arrays = load_dataset("digits")
    assert dataset == "digits" and evaluation.total == len(arrays.test_labels)
    expected = evaluate_model(model, arrays.test_images, arrays.test_labels)
    assert torch.equal(evaluation.confusion, expected.confusion)
    with pytest.raises(ConfigError, match="--dataset must be one of"):
        evaluate_on_dataset(str(path), "no-such-dataset")
