"""`search.time_budget.deadlines`: the search's clock shared through a file, the trial it prunes, and
the reproduction's training deadline."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import optuna
import pytest
import pytorch_lightning as pl
import torch
from torch.optim.lr_scheduler import OneCycleLR

from search.experiment.spec import validate_experiment
from search.time_budget.deadlines import (
    SearchClock,
    SearchEndCallback,
    TrainingDeadline,
    end_one_cycle_sooner,
)
from tests.conftest import tiny_experiment


def test_the_search_clock_is_shared_through_its_file(tmp_path: Path) -> None:
    writer, reader = SearchClock(tmp_path / "clock.json"), SearchClock(tmp_path / "clock.json")
    assert not reader.out_of_time() and not reader.past_end()  # no file yet: no limit
    now = time.time()
    writer.set(now - 1, now + 3600)
    assert writer.out_of_time() and not writer.past_end()  # the writer knows at once
    time.sleep(0.6)  # a reader looks again every half second
    assert reader.out_of_time() and not reader.past_end()
    writer.set(now - 2, now - 1)
    time.sleep(0.6)
    assert reader.past_end()


def test_a_trial_past_the_search_end_is_pruned_once_the_study_has_a_result(tmp_path: Path) -> None:
    clock = SearchClock(tmp_path / "clock.json")
    clock.set(time.time() - 2, time.time() - 1)  # the search's share is over
    study = optuna.create_study(direction="maximize")
    running = study.ask()
    callback = SearchEndCallback(clock, running)
    callback.on_train_batch_end()  # no COMPLETE trial yet: the reproduction needs this one
    study.tell(study.ask(), 0.5)
    time.sleep(1.05)  # the callback asks the storage at most once a second
    with pytest.raises(optuna.TrialPruned, match="the search's share of the time budget ran out"):
        callback.on_train_batch_end()


def test_training_stops_at_the_deadline_with_the_best_weights_so_far() -> None:
    from search.reproduce.retrain import train

    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 50}))
    deadline = TrainingDeadline(time.time())  # already due: stops after the first batch
    parts, best, _, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[deadline])
    assert best.best_value is not None  # Lightning validated the partial epoch
    assert parts.module.trainer.global_step == 1  # one batch, not 50 epochs
    assert best.best_epoch == 0
    note = deadline.note()
    assert note is not None and "epoch 1 of 50" in note


def _one_cycle(total: int) -> tuple[torch.optim.Optimizer, OneCycleLR]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    return optimizer, OneCycleLR(optimizer, max_lr=1e-2, total_steps=total)


def _run(optimizer: torch.optim.Optimizer, schedule: OneCycleLR, steps: int) -> list[tuple[float, float]]:
    """The (rate, momentum) each of `steps` optimizer steps used."""
    used = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        used.append((group["lr"], group["betas"][0]))
        optimizer.step()
        schedule.step()
    return used


@pytest.mark.parametrize("done", [10, 50], ids=["warming up", "annealing"])
def test_a_one_cycle_schedule_ended_sooner_still_reaches_its_floor(done: int) -> None:
    optimizer, schedule = _one_cycle(100)
    before = [rate for rate, _ in _run(optimizer, schedule, done)]
    end_one_cycle_sooner(schedule, 20)
    after = _run(optimizer, schedule, 20)  # torch raises if a schedule is stepped past its end
    rates = [rate for rate, _ in after]
    assert schedule.total_steps == done + 20
    assert rates[-1] == pytest.approx(optimizer.param_groups[0]["min_lr"]) and after[-1][1] == pytest.approx(
        0.95
    )
    if done == 50:  # annealing goes on from the rate it had, down without a jump
        assert rates[0] <= before[-1] and before[-1] - rates[0] < 0.05 * before[-1]
        assert all(a >= b for a, b in itertools.pairwise(rates))


class EpochClock(pl.Callback):
    """A fake clock on which one epoch is one second; keeps the rate each step used."""

    def __init__(self) -> None:
        self.now = 0.0
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.now += 1 / trainer.num_training_batches


def test_a_run_behind_its_deadline_is_shortened_and_its_schedule_still_ends(workdir: Path) -> None:
    from search.reproduce.retrain import train

    clock = EpochClock()
    deadline = TrainingDeadline(3.5, clock=lambda: clock.now)  # 3 of 6 epochs fit
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 6}, optim={"scheduler": "onecycle"}))
    parts, _, _, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[clock, deadline])
    trainer = parts.module.trainer
    assert trainer.current_epoch == 3 and trainer.global_step == 3 * trainer.num_training_batches
    floor = trainer.optimizers[0].param_groups[0]["min_lr"]
    assert clock.rates[-1] == pytest.approx(floor)  # the last step at the floor, not part-way down
    assert deadline.stopped_in_epoch is None
    assert deadline.note() == (
        "training shortened to 3 of 6 epochs, as many as fit before the time budget's deadline at the "
        "pace it kept; its one-cycle schedule ends with epoch 3."
    )


def test_a_run_ahead_of_its_deadline_is_lengthened_up_to_the_ceiling_and_its_schedule_still_ends(
    workdir: Path,
) -> None:
    from search.reproduce.retrain import train

    clock = EpochClock()
    replanned: list[int] = []
    deadline = TrainingDeadline(8.5, clock=lambda: clock.now, ceiling=6, on_replan=replanned.append)
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 4}, optim={"scheduler": "onecycle"}))
    parts, _, _, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[clock, deadline])
    trainer = parts.module.trainer
    assert trainer.current_epoch == 6 and trainer.global_step == 6 * trainer.num_training_batches
    assert replanned == [6]  # 8 epochs would fit, 4 were planned: the ceiling
    floor = trainer.optimizers[0].param_groups[0]["min_lr"]
    assert clock.rates[-1] == pytest.approx(floor)
    peak_step = clock.rates.index(max(clock.rates))
    assert peak_step > 1.5 * trainer.num_training_batches  # the warm-up stretched with it: 30% of 6 epochs
    assert deadline.note() == (
        "training lengthened to 6 epochs from the 4 planned, as many as fit before the time budget's "
        "deadline at the pace it kept (at most 6); its one-cycle schedule ends with epoch 6."
    )


def test_without_a_ceiling_a_run_ahead_of_its_deadline_keeps_its_epochs(workdir: Path) -> None:
    from search.reproduce.retrain import train

    clock = EpochClock()
    deadline = TrainingDeadline(8.5, clock=lambda: clock.now)
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 4}, optim={"scheduler": "onecycle"}))
    parts, _, _, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[clock, deadline])
    assert parts.module.trainer.current_epoch == 4 and deadline.note() is None


def test_a_shortened_run_starts_weight_averaging_within_its_new_length(workdir: Path) -> None:
    from lightning_modules.averaging import AveragedWeights
    from search.reproduce.retrain import train

    clock = EpochClock()
    deadline = TrainingDeadline(3.5, clock=lambda: clock.now)  # 3 of 8 epochs fit
    spec = validate_experiment(
        tiny_experiment(trainer={"max_epochs": 8, "weight_averaging": {"kind": "swa", "start": 0.5}})
    )
    parts, _, _, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[clock, deadline])
    averaging = next(c for c in parts.module.trainer.callbacks if isinstance(c, AveragedWeights))
    per_epoch = parts.module.trainer.num_training_batches
    # planned from step 4 epochs in, past the new end; re-planned to half of the 3 epochs that fit
    assert averaging.first_step == max(int(0.5 * 3 * per_epoch), per_epoch)
    assert averaging.updates == 3 * per_epoch - averaging.first_step
