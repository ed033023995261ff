"""Planning a worker pool: which processes `--devices/--workers/--trials-per-device` ask for.

A `WorkerSlot` says where one worker process runs (some GPUs, or a share of the CPU cores) and the
environment it gets; `plan_workers` turns the command line into slots, or a `ConfigError` that says
why it cannot be had on this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, TypeVar

from search.errors import ConfigError


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker process runs: some GPUs (physical ids as CUDA_VISIBLE_DEVICES names them) or CPU."""

    index: int
    kind: Literal["cpu", "cuda"]
    gpus: tuple[str, ...] = ()
    threads: int | None = None
    loader_workers: int | None = None
    indices: tuple[int, ...] = ()  # the same GPUs as CUDA indices of the parent process

    @property
    def label(self) -> str:
        return f"cuda:{','.join(self.gpus)}" if self.kind == "cuda" else f"cpu:{self.index}"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)  # empty for CPU: the worker sees no GPU
        env["CONVTUNE_WORKER"] = self.label
        if self.threads is not None:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[name] = str(self.threads)
        return env


WithData = TypeVar("WithData")  # an ExperimentSpec or a RunConfig: a pydantic model with `data`


def with_slot_loaders(holder: WithData, loader_workers: int | None) -> WithData:
    """`holder` with `data.num_workers: auto` set to a slot's data loader processes (augmenting in
    more processes than there are cores for would slow every worker down); else unchanged."""
    data = holder.data
    if loader_workers is None or data.num_workers != "auto":
        return holder
    return holder.model_copy(update={"data": data.model_copy(update={"num_workers": loader_workers})})


def visible_gpus() -> list[str]:
    """Physical ids of the GPUs this process may use, in CUDA's order."""
    # lazy: `convtune tune --workers N` plans its CPU pool (gpus=[]) before importing torch (~1 s), so
    # that the forkserver starts preloading that much sooner (worker_start.prestart_for_command_line)
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None or not listed.strip():
        return [str(i) for i in range(count)]
    return [name.strip() for name in listed.split(",") if name.strip()][:count]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan_workers(
    devices: str = "auto",
    workers: int | None = None,
    trials_per_device: int = 1,
    *,
    gpus_per_trial: int = 1,
    gpus: list[str] | None = None,
    cores: int | None = None,
) -> list[WorkerSlot]:
    """The worker slots for `--devices/--workers/--trials-per-device`; a `ConfigError` when impossible."""
    gpus = visible_gpus() if gpus is None else gpus
    cores = cores or available_cores()
    text = devices.strip().lower()
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, but got --workers {workers}.")
    if trials_per_device < 1:
        raise ConfigError(f"--trials-per-device must be at least 1, but got {trials_per_device}.")
    if text == "auto":
        text = "cpu" if not gpus else ",".join(str(i) for i in range(len(gpus)))
        if gpus and workers is not None:
            raise ConfigError("--workers is for CPU workers; on GPUs use --trials-per-device K.")
    if text == "cpu":
        if trials_per_device != 1:
            raise ConfigError("--trials-per-device is for GPUs; on CPU use --workers N.")
        return _cpu_slots(workers or 1, cores)
    if workers is not None:
        raise ConfigError("--workers is for --devices cpu; with GPU ids use --trials-per-device K.")
    indices = _parse_gpu_ids(text, len(gpus))
    if gpus_per_trial > len(indices) or len(indices) % gpus_per_trial:
        raise ConfigError(
            f"trainer.devices={gpus_per_trial} needs the --devices list to hold a multiple of "
            f"{gpus_per_trial} GPUs, but got {len(indices)}."
        )
    groups = [indices[i : i + gpus_per_trial] for i in range(0, len(indices), gpus_per_trial)]
    slots = []
    for group in groups:
        for _ in range(trials_per_device):
            slots.append(WorkerSlot(len(slots), "cuda", tuple(gpus[i] for i in group), indices=tuple(group)))
    return slots


def _cpu_slots(count: int, cores: int) -> list[WorkerSlot]:
    if count == 1:
        return [WorkerSlot(0, "cpu")]
    threads = max(1, cores // count)
    loaders = max(0, (cores - threads * count) // count)
    return [WorkerSlot(i, "cpu", (), threads, loaders) for i in range(count)]


def _parse_gpu_ids(devices: str, visible: int) -> list[int]:
    try:
        ids = [int(part) for part in devices.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--devices takes 'auto', 'cpu' or GPU ids like 0,1, but got --devices {devices}."
        ) from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ConfigError(f"--devices needs distinct GPU ids >= 0, like 0,1, but got --devices {devices}.")
    if visible == 0:
        raise ConfigError(
            f"--devices {devices} names GPUs, but this machine has 0 visible GPUs; "
            "use --devices cpu --workers N."
        )
    if max(ids) >= visible:
        raise ConfigError(
            f"--devices {devices} names GPU {max(ids)}, but only {visible} GPU"
            f"{'s are' if visible > 1 else ' is'} visible (ids 0..{visible - 1})."
        )
    return ids
