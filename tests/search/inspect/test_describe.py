"""`search.inspect.describe`: architecture tables for people, as rich and as markdown tables."""

from __future__ import annotations

from lightning_modules.config import RunConfig
from lightning_modules.models.layer_table import format_table
from search.inspect.describe import architecture_markdown, architecture_rows, layer_infos


def _config(model: dict[str, object]) -> RunConfig:
    return RunConfig.model_validate({"data": {"dataset": "digits"}, "model": model})


def test_markdown_has_the_header_and_one_line_per_row() -> None:
    rows = layer_infos(_config({"channels": [4, 8]}), 1, (8, 8), 10)
    lines = architecture_markdown(rows).splitlines()
    header, *body = format_table(rows)
    assert lines[0] == "| " + " | ".join(header) + " |"
    assert lines[1] == "|" + "---|" * len(header)
    assert len(lines) == 2 + len(body)
    assert "receptive field" in lines[0]


def test_a_backbone_is_traced_and_a_rich_table_is_titled() -> None:
    config = _config({"name": "resnet18", "pretrained": False})
    rows = layer_infos(config, 3, (32, 32), 10)
    assert sum(row.kind == "conv" for row in rows) >= 10
    table = architecture_rows(_config({"channels": [4]}), 1, (8, 8), 10)
    assert table.title == "architecture of convnet" and table.row_count > 0
