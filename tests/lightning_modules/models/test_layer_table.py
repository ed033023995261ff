"""Architecture-table rows, the receptive-field arithmetic they carry, and the table as strings."""

from __future__ import annotations

import pytest

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.layer_table import (
    TABLE_COLUMNS,
    LayerInfo,
    ReceptiveField,
    check_dims,
    collapse,
    format_table,
    pair,
)
from lightning_modules.models.shapes import architecture_table


def test_format_table() -> None:
    config = ConvNetConfig(channels=[4, 8], kernel_size=[3, 4], padding="same", pool=["max", "none"])
    rows = architecture_table(config, 1, (8, 8), 3)
    table = format_table(rows)
    assert table[0] == list(TABLE_COLUMNS) and len(table) == len(rows) + 2
    assert all(isinstance(cell, str) for line in table for cell in line)
    assert table[1][:7] == ["blocks.0.conv0", "conv", "3x3", "1", "1", "4x8x8", "3"]
    assert table[5][4] == "1,2"  # even kernel, same padding: uneven
    assert table[-1][0] == "total" and table[-1][7] == f"{sum(row.params for row in rows):,}"
    assert table[1][9] == f"{4 * 9 * 8 * 8:,}" and table[2][9] == ""  # a conv's multiply-adds; none for bn
    assert table[-1][9] == f"{sum(row.macs for row in rows):,}"


def test_a_row_without_dense_params_counts_its_own() -> None:
    assert LayerInfo("fc", "linear", params=42).dense_params == 42
    assert LayerInfo("conv", "conv", params=10, dense_params=900).dense_params == 900


def test_receptive_field_grows_by_kernel_times_jump() -> None:
    field = ReceptiveField().window((3, 3), (2, 2))  # a 3x3 conv with stride 2
    assert (field.size, field.step) == (3, 2)
    field = field.window((3, 3), (1, 1))  # then 3x3 at stride 1 sees 2 more jumps of 2
    assert field.columns() == {"receptive_field": 7, "jump": 2}
    assert field.whole(4, 4).size == 7 + 3 * 2  # a dense layer over a 4x4 map of it


def test_check_dims_and_pairs() -> None:
    assert check_dims(3, 32) == (32, 32) and check_dims(1, (28, 20), num_classes=10) == (28, 20)
    with pytest.raises(ValueError, match="in_channels must be an int >= 1, but got in_channels=0"):
        check_dims(0, (8, 8))
    with pytest.raises(ValueError, match="image_size must be two ints >= 1"):
        check_dims(1, (8, 8, 8))
    assert pair(3) == (3, 3) and pair([2, 5]) == (2, 5)
    assert collapse((4, 4)) == 4 and collapse((1, 2)) == (1, 2)
