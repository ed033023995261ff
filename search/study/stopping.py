"""Stopping a trial when its worker is asked to stop (SIGTERM, Ctrl-C): at the next batch, as a FAIL
that the study retries with the same params when it resumes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl


class TrialInterrupted(SystemExit):
    """Raised inside a trial when its worker was asked to stop (SIGTERM, Ctrl-C).

    A `SystemExit`, like Lightning's own `SIGTERMException`: Lightning re-raises it out of `fit`, and
    `search.study.trial_loop.run_one` closes the trial as FAIL on it.
    """


class StopCallback(pl.Callback):
    """Ends the trial at the next batch once `should_stop()` is true (a signal handler set it)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def _check(self) -> None:
        if self.should_stop():
            raise TrialInterrupted("the worker was asked to stop")

    def on_train_batch_end(self, *args: Any) -> None:
        self._check()

    def on_validation_batch_end(self, *args: Any) -> None:
        self._check()
