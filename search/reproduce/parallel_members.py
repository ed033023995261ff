"""`reproduce --top-k K --workers N`: an ensemble's members retrained in up to N processes at once.

Each member trains in a worker process exactly as the sequential path trains it
(`search.reproduce.member.train_member`), in the MLflow run the parent opened for it, and sends back
only what the ensemble needs: its model and its validation figures, plus a digest of its validation
split (the data stays in the worker; the parent decodes its own copy once, to choose the ensemble
and to test it). On the CPU the cores are split between the workers as `tune --workers` splits
them (`search.parallel.plan`: torch threads and data loader processes); what that saves is measured
by `benchmarks/ensemble_workers.py` (docs/performance.md). With `--accelerator gpu` the workers
share the visible GPUs as Lightning places them.

A member is started when a worker is free, with an equal share of the time left before a deadline
for each round of members still to train. A member that fails ends its own run; the members
training beside it finish theirs, and then the error is raised. Ctrl-C or SIGTERM sent to this
process alone (`kill PID`, a container's stop; a terminal's Ctrl-C reaches the whole group anyway)
is passed on to the members still training, which stop and end their runs as killed, and then
raised here as `KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace

import torch
from optuna.trial import FrozenTrial

from search.experiment.spec import ExperimentSpec
from search.parallel.plan import plan_workers, with_slot_loaders
from search.parallel.stop_flag import interrupt_on
from search.parallel.worker_start import no_main_module
from search.reproduce.member import (
    Member,
    MemberProgress,
    member_deadline,
    member_finished,
    member_started,
    train_member,
    validation_digest,
)
from search.reproduce.options import ReproduceOptions
from search.reproduce.pace import Pacing
from search.reproduce.plan import Plan, PlanFor
from search.tracking import load_settings
from search.tracking.tracker import Tracker


@dataclass
class TrainedMember:
    """What a worker sends back: the member, its validation split's digest, a deadline note."""

    member: Member
    validation: str
    note: str | None


@dataclass(frozen=True)
class MemberSlot:
    """What one member worker gets on the CPU, as `tune --workers` plans it: torch threads and data
    loader processes (None: the defaults, on a GPU or for a single worker)."""

    threads: int | None = None
    loader_workers: int | None = None


def member_slot(workers: int, accelerator: str | None) -> MemberSlot:
    if accelerator == "gpu":
        return MemberSlot()
    slot = plan_workers("cpu", workers)[0]
    return MemberSlot(slot.threads, slot.loader_workers)


def _start_worker(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    # Ctrl-C from the parent stops a member even where the command started with SIGINT ignored (a
    # background job of a script, nohup): Python then installs no handler of its own
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


def train_in_worker(
    spec: ExperimentSpec, options: ReproduceOptions, plan: Plan, loader_workers: int | None
) -> TrainedMember:
    """The body of one member in a worker process: retrained and measured, its run closed; data loading
    set to `auto` gets the slot's loader processes."""
    plan = replace(plan, config=with_slot_loaders(plan.config, loader_workers))
    member, datamodule, note = train_member(spec, options, plan, Tracker(load_settings()))
    return TrainedMember(member, validation_digest(datamodule), note)


def train_in_parallel(
    spec: ExperimentSpec,
    options: ReproduceOptions,
    trials: Sequence[FrozenTrial],
    plan_for: PlanFor,
    workers: int,
    progress: MemberProgress,
) -> list[TrainedMember]:
    """Every trial retrained in up to `workers` processes; results in the order of `trials`.

    `plan_for` opens a member's run; it is called in this process when the member starts, so that a
    member never started leaves no run behind. `progress` gets a line as each member starts and ends."""
    workers = max(1, min(workers, len(trials)))
    slot = member_slot(workers, options.accelerator)
    context = multiprocessing.get_context("forkserver")
    with (
        no_main_module(),
        ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(slot.threads,)
        ) as pool,
    ):
        try:
            with interrupt_on(signal.SIGTERM):
                return _train_all(pool, spec, options, trials, plan_for, workers, slot, progress)
        except KeyboardInterrupt:
            _interrupt_workers(pool)
            raise


def _train_all(
    pool: ProcessPoolExecutor,
    spec: ExperimentSpec,
    options: ReproduceOptions,
    trials: Sequence[FrozenTrial],
    plan_for: PlanFor,
    workers: int,
    slot: MemberSlot,
    progress: MemberProgress,
) -> list[TrainedMember]:
    results: dict[int, TrainedMember] = {}
    running: dict[Future[TrainedMember], int] = {}
    start_times: dict[int, float] = {}
    pacing = Pacing(options.epoch_ceiling, spec.trainer.max_epochs)
    started = 0
    while started < len(trials) or running:
        while started < len(trials) and len(running) < workers:
            rounds_left = math.ceil((len(trials) - started) / workers)
            deadline = member_deadline(options.deadline, rounds_left)
            plan = plan_for(trials[started], pacing.epochs(trials[started], deadline))
            ceiling = pacing.ceiling_for(trials[started])
            member_options = replace(options, deadline=deadline, epoch_ceiling=ceiling)
            future = pool.submit(train_in_worker, spec, member_options, plan, slot.loader_workers)
            running[future] = started
            start_times[started] = time.perf_counter()
            progress(member_started(started, len(trials), plan, len(running)))
            started += 1
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            index = running.pop(future)
            results[index] = future.result()  # a member's error: the others finish first
            seconds = time.perf_counter() - start_times[index]
            pacing.finished(trials[index], results[index].member.training)
            progress(member_finished(index, len(trials), results[index].member, seconds, len(results)))
    return [results[index] for index in range(len(trials))]


def _interrupt_workers(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C for every worker process, as a terminal would send it: Lightning stops the member's
    training, and the member ends its run as killed before its process exits."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)  # (which forgets them)
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
