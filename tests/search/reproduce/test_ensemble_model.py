"""`search.reproduce.ensemble_model`: an ensemble of inference models as one module."""

from __future__ import annotations

import pytest

from search.reproduce.ensemble_model import EnsembleModel
from search.tracking.model_store import InferenceModel
from tests.helpers.tiny_runs import untrained_model


def test_ensemble_refuses_members_of_another_shape() -> None:
    member = untrained_model([])
    with pytest.raises(ValueError, match="one non-negative weight per member"):
        EnsembleModel([member], [1, 2])
    assert isinstance(member, InferenceModel)
