"""A trial's batches and epochs reach the live view through its Lightning callback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from search.study.trial_progress import TrialProgressCallback


class Feed:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def start_trial(self, number: int, epochs: int, batches: int) -> None:
        self.events.append(("start", number, epochs, batches))

    def advance(self) -> None:
        self.events.append(("batch",))

    def epoch_done(self, status: str) -> None:
        self.events.append(("epoch", status))


def test_the_callback_feeds_start_batches_and_the_epoch_metric() -> None:
    feed = Feed()
    callback = TrialProgressCallback(feed, 3, "val/acc")
    trainer: Any = SimpleNamespace(
        num_training_batches=2, max_epochs=4, current_epoch=0, callback_metrics={"val/acc": torch.tensor(0.5)}
    )
    callback.on_train_start(trainer, None)  # type: ignore[arg-type]
    callback.on_train_batch_end(trainer)
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    trainer.num_training_batches, trainer.callback_metrics = float("inf"), {}
    callback.on_train_start(trainer, None)  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert feed.events == [
        ("start", 3, 4, 2),
        ("batch",),
        ("epoch", "epoch 1 val/acc 0.5000"),
        ("start", 3, 4, 1),  # an iterable loader of unknown length counts as one batch
        ("epoch", ""),
    ]
