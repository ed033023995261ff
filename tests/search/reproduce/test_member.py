"""`search.reproduce.member`: a member's share of the time, and the validation split it was chosen on."""

from __future__ import annotations

import time

import pytest

from lightning_modules.config import RunConfig
from lightning_modules.training import build_datamodule
from search.errors import ConvtuneError
from search.reproduce.member import check_same_validation_split, member_deadline, validation_digest
from tests.conftest import tiny_experiment


def test_each_member_gets_an_equal_share_of_the_time_left() -> None:
    assert member_deadline(None, 3) is None
    now = time.time()
    share = member_deadline(now + 100, 4)
    assert share is not None and now + 24 < share < now + 26
    late = member_deadline(now - 5, 2)
    assert late is not None and late <= time.time() + 1  # past the deadline: no time at all


def _digest(**data: object) -> str:
    raw = tiny_experiment()
    config = RunConfig.model_validate(
        {key: raw[key] for key in ("seed", "data", "model", "optim", "trainer")}
    )
    config = config.model_copy(update={"data": config.data.model_copy(update=data)})
    return validation_digest(build_datamodule(config))


def test_the_same_split_in_two_processes_has_one_digest_and_another_split_is_refused() -> None:
    first = _digest()
    assert _digest() == first  # decoded again (as a worker process does): the same images, the same digest
    other = _digest(val_fraction=0.3)
    assert other != first
    check_same_validation_split(first, _digest(), 3)
    with pytest.raises(ConvtuneError, match="trial 3 validates on other images"):
        check_same_validation_split(first, other, 3)
