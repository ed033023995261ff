"""Architecture tables for people: per layer kind, filter, stride, output shape, receptive field."""

from __future__ import annotations

from rich.table import Table

from lightning_modules.config import RunConfig
from lightning_modules.models.layer_table import NUMBER_COLUMNS, LayerInfo, format_table
from lightning_modules.models.registry import layer_table


def layer_infos(
    config: RunConfig, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> list[LayerInfo]:
    return layer_table(config.model, in_channels, config.data.input_size(image_size), num_classes)


def architecture_rows(
    config: RunConfig, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> Table:
    rows = layer_infos(config, in_channels, image_size, num_classes)
    return architecture_rich_table(rows, title=f"architecture of {config.model.name}")


def architecture_rich_table(rows: list[LayerInfo], title: str) -> Table:
    """`format_table`'s cells as a rich table, numbers right-aligned."""
    header, *body = format_table(rows)
    table = Table(title=title)
    for column in header:
        table.add_column(column, justify="right" if column in NUMBER_COLUMNS else "left")
    for cells in body:
        table.add_row(*cells)
    return table


def architecture_markdown(rows: list[LayerInfo]) -> str:
    header, *body = format_table(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"
