"""`lightning_modules/data/__init__.py`: the data API in one place; `ImageDataModule` only on first use,
so that loading a dataset does not import Lightning."""

from __future__ import annotations

import pytest

import lightning_modules.data as data
from tests.helpers.fresh_imports import imported_packages


def test_loading_a_dataset_does_not_import_lightning() -> None:
    imported = imported_packages("from lightning_modules.data import load_dataset; load_dataset('digits')")
    assert imported & {"pytorch_lightning", "lightning"} == set()


def test_every_exported_name_resolves_and_an_unknown_one_is_an_attribute_error() -> None:
    from lightning_modules.data.datamodule import ImageDataModule

    assert data.ImageDataModule is ImageDataModule
    assert all(getattr(data, name) is not None for name in data.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'DataModule'"):
        _ = data.DataModule
