"""`lightning_modules/data/__init__.py`: the data API in one place; `ImageDataModule` only on first use,
so that loading a dataset does not import Lightning."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lightning_modules.data as data
from tests.conftest import REPO


def test_loading_a_dataset_does_not_import_lightning() -> None:
    probe = (
        "import sys; from lightning_modules.data import load_dataset; load_dataset('digits');"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pytorch_lightning', 'lightning'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_exported_name_resolves_and_an_unknown_one_is_an_attribute_error() -> None:
    from lightning_modules.data.datamodule import ImageDataModule

    assert data.ImageDataModule is ImageDataModule
    assert all(getattr(data, name) is not None for name in data.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'DataModule'"):
        _ = data.DataModule
