"""`search.inspect.evaluation`: predictions, the one confusion matrix (counted, summarized, drawn)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from search.inspect.evaluation import (
    MAX_EVAL_IMAGES,
    Evaluation,
    confusion_counts,
    evaluate_model,
    evaluate_predictions,
    plot_confusion,
    predict,
    title_on_test_split,
    title_on_validation,
)
from tests.helpers.pictures import assert_png
from tests.helpers.tiny_runs import untrained_model


def test_counts_are_true_class_by_predicted_class() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    counts = confusion_counts(predicted, labels, 3)
    assert counts.dtype == torch.int64
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (500,), generator=generator)
    predicted = torch.randint(0, 7, (500,), generator=generator)
    expected = torch.zeros(7, 7, dtype=torch.int64)
    for true, guess in zip(labels.tolist(), predicted.tolist(), strict=True):
        expected[true, guess] += 1
    assert torch.equal(confusion_counts(predicted, labels, 7), expected)
    assert confusion_counts(torch.tensor([0]), torch.tensor([0]), 1).tolist() == [[1]]


def test_evaluation_accuracy_per_class_and_json() -> None:
    evaluation = evaluate_predictions(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), ["a", "b", "c"])
    assert evaluation.total == 4 and evaluation.accuracy == pytest.approx(0.75)
    assert evaluation.per_class == {"a": 0.5, "b": 1.0, "c": None}
    document = json.loads(json.dumps(evaluation.to_json()))
    assert document["matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert document["rows"] == "true class" and document["columns"] == "predicted class"
    empty = Evaluation(["a", "b"], torch.zeros(2, 2, dtype=torch.int64))
    assert empty.total == 0 and empty.accuracy == 0.0


def test_titles_say_which_split_how_many_images_and_the_accuracy() -> None:
    labels = torch.tensor([1] * 1000 + [0] * 500)
    evaluation = evaluate_predictions(torch.ones(1500, dtype=torch.long), labels, ["a", "b"])
    assert title_on_validation(evaluation) == "confusion matrix on 1,500 validation images (accuracy 66.7%)"
    assert title_on_test_split(evaluation) == "test split: 1,500 images, accuracy 66.67%"


def test_the_confusion_matrix_is_a_picture_with_and_without_counts(tmp_path: Path) -> None:
    few = evaluate_predictions(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]), ["a", "b", "c"])
    assert_png(plot_confusion(few, tmp_path / "few.png", title=title_on_validation(few)))
    many_classes = [f"class {i}" for i in range(30)]
    many = evaluate_predictions(torch.arange(30), torch.arange(30), many_classes)
    assert_png(plot_confusion(many, tmp_path / "many.png", title=title_on_test_split(many)))


def test_predict_batches_and_stops_at_max_eval_images() -> None:
    network = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    inputs = torch.randn(MAX_EVAL_IMAGES + 5, 1, 2, 2)
    labels = torch.randint(0, 3, (MAX_EVAL_IMAGES + 5,))
    predictions = predict(network, inputs, labels, batch_size=4096)
    assert len(predictions.predicted) == len(predictions.labels) == MAX_EVAL_IMAGES
    with torch.no_grad():
        expected = network(inputs[:MAX_EVAL_IMAGES]).softmax(dim=1).max(dim=1)
    assert torch.equal(predictions.predicted, expected.indices)
    assert torch.allclose(predictions.confidence, expected.values)
    empty = predict(network, inputs[:0], labels[:0])
    assert len(empty.predicted) == 0 and len(empty.confidence) == 0


def test_evaluate_model_counts_the_models_own_predictions() -> None:
    model = untrained_model([])
    images = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    predicted = model.predict(images).argmax(dim=1)
    evaluation = evaluate_model(model, images, predicted)
    assert evaluation.accuracy == 1.0 and evaluation.class_names == model.class_names
    assert int(evaluation.confusion.sum()) == 12
