"""`search.inspect.compare`: two models side by side, and what the cheaper one gave up."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from lightning_modules.models.layer_table import LayerInfo
from search.inspect.compare import (
    ModelSummary,
    comparison_markdown,
    comparison_rows,
    gave_up,
    side_by_side,
    summarize,
)
from tests.helpers.pictures import assert_png
from tests.helpers.tiny_runs import untrained_model


def _summary(label: str, widths: list[int], field: int, macs: int, latency_ms: float) -> ModelSummary:
    rows = [
        LayerInfo(f"conv{i}", "conv", kernel=3, stride=1, out_shape=(width, 8, 8), receptive_field=field,
                  params=9 * width, macs=macs // len(widths))
        for i, width in enumerate(widths)
    ]  # fmt: skip
    return ModelSummary(label, rows, latency_ms, "7", 0.9)


def test_the_cheaper_model_is_named_with_what_it_gave_up() -> None:
    big = _summary("A", [16, 32], 5, 4000, 2.0)
    small = _summary("B", [8], 3, 1000, 0.5)
    sentence = gave_up(big, small)
    assert sentence.startswith("B (the cheaper) has 4.0x fewer multiply-adds")
    assert "channels 16-32 -> 8" in sentence and "receptive field 5 -> 3 px" in sentence
    assert "conv layers 2 -> 1" in sentence and sentence == gave_up(small, big)


def test_rows_put_the_totals_first_then_the_conv_layers_side_by_side() -> None:
    rows = comparison_rows(_summary("A", [16, 32], 5, 4000, 2.0), _summary("B", [8], 3, 1000, 0.5))
    assert [what for what, _, _ in rows[:2]] == ["parameters", "multiply-adds per image"]
    assert rows[-2][0] == "conv 1" and rows[-1] == ("conv 2", rows[-1][1], "")
    assert rows[-2][1] == "3x3 stride 1, 16 filters -> 16x8x8, field 5"
    markdown = comparison_markdown(_summary("A", [16], 5, 4000, 2.0), _summary("B", [8], 3, 1000, 0.5))
    assert markdown.startswith("# A against B") and "| conv 1 |" in markdown


def test_a_model_is_summarized_with_its_prediction(tmp_path: Path) -> None:
    model = untrained_model([])
    image = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
    summary = summarize(model, "mine", image)
    probabilities = model.predict(image)[0]
    assert summary.prediction == model.class_names[int(probabilities.argmax())]
    assert summary.probability == float(probabilities.max()) and summary.latency_ms > 0
    assert [row.out_shape[0] for row in summary.convs] == [8, 16] and summary.params > 0
    for name in ("left.png", "right.png"):
        Image.new("RGB", (60, 40), "white").save(tmp_path / name)
    path = side_by_side(tmp_path / "left.png", tmp_path / "right.png", ("A", "B"), tmp_path / "both.png")
    assert_png(path)
