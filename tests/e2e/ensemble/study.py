"""The ensemble tests' study: a 3-trial digits study whose 2 best trials are ensembled with the test
split unreadable until the ensemble's final evaluation (any earlier read fails the fixture)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import search.reproduce.ensemble as ensemble_module
from lightning_modules.data.datamodule import ImageDataModule
from search.reproduce.ensemble import EnsembleReproduction

NAME = "tiny-ensemble"
URI = f"models:/{NAME}@ensemble"


class SplitReadTooEarly(AssertionError):
    """The test split was read before the final evaluation."""


@dataclass
class Ensembled:
    folder: Path
    result: EnsembleReproduction
    final_reads: int


@contextlib.contextmanager
def unreadable_test_split() -> Iterator[dict[str, int]]:
    """Every read of a test split raises, except inside `final_ensemble_test` (counted)."""
    state = {"open": 0, "calls": 0}
    original_split = ImageDataModule._split
    original_final = ensemble_module.final_ensemble_test

    def guarded_split(self: ImageDataModule, name: str) -> Any:
        if name == "test" and not state["open"]:
            raise SplitReadTooEarly("the test split was read before the final evaluation")
        return original_split(self, name)

    def final(*args: Any, **kwargs: Any) -> Any:
        state["open"] += 1
        state["calls"] += 1
        try:
            return original_final(*args, **kwargs)
        finally:
            state["open"] -= 1

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageDataModule, "_split", guarded_split)
        patch.setattr(ensemble_module, "final_ensemble_test", final)
        yield state
