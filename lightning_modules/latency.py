"""What a network costs to run: median inference latency per image, and its size in bytes.

`measure_latency` times forward passes of a copy of the network in eval mode under
`torch.inference_mode`, after warm-up, on the given device and in the given precision (autocast for
the mixed precisions), and returns the median milliseconds per image. It is time-boxed: it takes
`repeats` samples, or fewer (at least `min_repeats`) when `max_seconds` runs out, so that a large
network costs a trial a bounded fraction of a second. Inputs come from a private seeded generator:
measuring never draws from the global random state, so a trial trains exactly as it would without.

On a CPU the measurement runs on one thread (`threads`), as a phone or a CPU server serving one
request per core would: per-image latency of a small network hardly gains from more threads, and
several threads on cores that other workers share wait for each other (a 0.3 ms network measured
at 115 ms on two busy cores with two threads), so one thread is also what makes the figure stable.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

_AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
_TRUE_DTYPE = {"64": torch.float64, "64-true": torch.float64, "bf16-true": torch.bfloat16}


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per image at `batch_size`, from `samples` timed forward passes."""

    ms_per_image: float
    batch_size: int
    samples: int
    seconds: float  # what the measurement itself took, warm-up included


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the network's state (parameters and buffers) as stored: what a saved model weighs."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `count` (None: unchanged) while the body runs."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    precision: str = "32",
    channels_last: bool = False,
    warmup: int = 2,
    repeats: int = 9,
    min_repeats: int = 3,
    max_seconds: float = 0.1,
    threads: int | None = 1,
) -> Latency:
    """Median ms per image of `model` on `(batch_size, *input_shape)` inputs; `model` is not changed.

    `precision` is a Lightning precision (`32`, `16-mixed`, `bf16-mixed`, `64`, ...): mixed ones run
    under autocast, true ones convert the copy. Warm-up and samples share `max_seconds`: one warm-up
    pass and `min_repeats` samples are taken whatever it says, more while it lasts. On a CPU it runs
    on `threads` threads (None: torch's current setting).
    """
    if batch_size < 1 or warmup < 1 or not 1 <= min_repeats <= repeats:
        raise ValueError(
            f"need batch_size >= 1, warmup >= 1 and 1 <= min_repeats <= repeats, but got "
            f"batch_size={batch_size}, warmup={warmup}, min_repeats={min_repeats}, repeats={repeats}."
        )
    started = time.perf_counter()
    device = torch.device(device)
    network, images = _prepared(model, input_shape, batch_size, device, precision, channels_last)
    autocast = _AUTOCAST.get(precision)
    deadline = started + max_seconds
    samples: list[float] = []
    with (
        cpu_threads(threads if device.type == "cpu" else None),
        torch.inference_mode(),
        torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None),
    ):
        for done in range(warmup):
            if done and time.perf_counter() >= deadline:
                break
            network(images)
        _synchronize(device)
        while len(samples) < repeats and (len(samples) < min_repeats or time.perf_counter() < deadline):
            tick = time.perf_counter()
            network(images)
            _synchronize(device)
            samples.append(time.perf_counter() - tick)
    median_ms = statistics.median(samples) * 1000 / batch_size
    return Latency(median_ms, batch_size, len(samples), time.perf_counter() - started)


def _prepared(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    batch_size: int,
    device: torch.device,
    precision: str,
    channels_last: bool,
) -> tuple[nn.Module, torch.Tensor]:
    """An eval-mode copy of `model` and a batch of inputs, on `device`, in the precision's dtype."""
    dtype = _TRUE_DTYPE.get(precision, torch.float32)
    network = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn((batch_size, *input_shape), generator=generator).to(device=device, dtype=dtype)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    return network, images
