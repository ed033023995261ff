from __future__ import annotations

import pytest
import torch

from lightning_modules.latency import measure_latency, model_size_bytes
from lightning_modules.models.registry import create_model
from lightning_modules.models.tracing import count_parameters

SHAPE = (1, 28, 28)


def _convnet(channels: list[int], **fields: object) -> torch.nn.Module:
    return create_model(
        "convnet", in_channels=1, num_classes=10, image_size=(28, 28), channels=channels, **fields
    )


def _median_of_three(model: torch.nn.Module, batch_size: int) -> float:
    runs = sorted(measure_latency(model, SHAPE, batch_size=batch_size).ms_per_image for _ in range(3))
    return runs[1]


@pytest.mark.parametrize("batch_size", [1, 64])
def test_a_ten_times_larger_network_measures_slower(batch_size: int) -> None:
    small = _convnet([8, 16])
    large = _convnet([32, 64, 128], convs_per_block=2)
    assert count_parameters(large) > 10 * count_parameters(small)
    assert _median_of_three(large, batch_size) > _median_of_three(small, batch_size)


def test_measuring_leaves_the_model_threads_and_random_state_alone() -> None:
    model = _convnet([8, 16]).train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    latency = measure_latency(model, SHAPE, batch_size=4, channels_last=True, precision="bf16-mixed")
    assert latency.ms_per_image > 0 and latency.batch_size == 4 and latency.samples >= 3
    assert model.training
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)  # a trial trains as it would without


def test_a_measurement_is_time_boxed() -> None:
    latency = measure_latency(_convnet([8, 16]), SHAPE, batch_size=64, min_repeats=1, max_seconds=0.05)
    assert latency.seconds < 0.5
    assert 1 <= latency.samples <= 9


def test_size_is_the_bytes_of_parameters_and_buffers() -> None:
    model = _convnet([8, 16])  # each batch norm: running mean and variance, and an int64 step counter
    buffers = 4 * (2 * 8 + 2 * 16) + 2 * 8
    assert model_size_bytes(model) == 4 * count_parameters(model) + buffers


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"1 <= min_repeats <= repeats, but got .*min_repeats=5, repeats=3"):
        measure_latency(_convnet([4]), SHAPE, min_repeats=5, repeats=3)
