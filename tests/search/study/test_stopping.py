"""A trial stops at the next batch once its worker is asked to stop."""

from __future__ import annotations

import pytest

from search.study.stopping import StopCallback, TrialInterrupted


def test_the_callback_interrupts_at_the_next_batch_once_asked() -> None:
    asked = [False]
    callback = StopCallback(lambda: asked[0])
    callback.on_train_batch_end()
    callback.on_validation_batch_end()
    asked[0] = True
    with pytest.raises(TrialInterrupted, match="asked to stop") as caught:
        callback.on_train_batch_end()
    assert isinstance(caught.value, SystemExit)  # Lightning re-raises it out of fit
    with pytest.raises(TrialInterrupted):
        callback.on_validation_batch_end()
