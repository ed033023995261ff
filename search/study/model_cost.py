"""What a trial's network costs, known before it trains: parameters, multiply-adds, size, latency.

`measure_cost` is what every trial logs (MLflow metrics and Optuna user attrs under `cost/`, names in
`search.tracking.vocabulary`): parameters, multiply-accumulates per image (the architecture table's
sum), bytes of its parameters and buffers, and the median latency per image measured on the trial's
device in eval mode after warm-up (`lightning_modules.latency`): at batch 1 and at a batch of
`LATENCY_BATCH`, in float32 and in the trial's precision (the same numbers when that is float32).
Each latency setting is time-boxed to `LATENCY_SECONDS`, so a trial pays at most ~0.4 s for it;
`cost/measure_seconds` records what it paid. `static_cost` is the arithmetic part alone (no model
is built for a convnet), for `convtune check`'s budget estimate.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from lightning_modules.config import RunConfig
from lightning_modules.latency import measure_latency, model_size_bytes
from lightning_modules.models.layer_table import LayerInfo
from lightning_modules.models.registry import has_arithmetic_table, layer_table, model_from_config
from lightning_modules.models.shapes import architecture_table
from lightning_modules.models.tracing import count_parameters, traced_table
from search.tracking import vocabulary as v

LATENCY_BATCH = 64
LATENCY_SECONDS = 0.1  # per setting: batch 1 and LATENCY_BATCH, float32 and the trial's precision
FLOAT32 = "32"
DataShape = tuple[int, tuple[int, int], int]  # channels, (height, width), classes


def _macs(rows: list[LayerInfo]) -> int:
    return sum(row.macs for row in rows)


def static_cost(config: RunConfig, data_shape: DataShape) -> dict[str, float]:
    """Parameters, multiply-adds and size of the config's network in float32, from its shapes.

    A convnet's come from arithmetic alone; a backbone is built once to count them. Raises
    `InfeasibleArchitecture` (a `ValueError`) when a feature map would vanish.
    """
    in_channels, image_size, num_classes = data_shape
    size = config.data.input_size(image_size)
    if has_arithmetic_table(config.model):
        rows = architecture_table(config.model, in_channels, size, num_classes)
        params = sum(row.params for row in rows)
        norm = sum(row.params for row in rows if row.kind == "bn")  # weight and bias: 2 per channel
        buffers = 4 * norm + 8 * sum(row.kind == "bn" for row in rows)  # running stats + step counter
        return {v.COST_PARAMS: params, v.COST_MACS: _macs(rows), v.COST_SIZE_BYTES: 4 * params + buffers}
    model = model_from_config(config.model, in_channels=in_channels, num_classes=num_classes, image_size=size)
    rows = traced_table(model, in_channels, size)
    return {
        v.COST_PARAMS: count_parameters(model),
        v.COST_MACS: _macs(rows),
        v.COST_SIZE_BYTES: model_size_bytes(model),
    }


def measure_cost(
    model: nn.Module,
    config: RunConfig,
    data_shape: DataShape,
    *,
    device: torch.device | str = "cpu",
    precision: str = FLOAT32,
) -> dict[str, float]:
    """Every `cost/` metric of `model`, built from `config` for data of `data_shape`, measured on
    `device`; `model` is not changed and the global random state is not drawn from."""
    started = time.perf_counter()
    in_channels, image_size, num_classes = data_shape
    size = config.data.input_size(image_size)
    rows = layer_table(config.model, in_channels, size, num_classes, network=model)
    costs: dict[str, float] = {
        v.COST_PARAMS: count_parameters(model),
        v.COST_MACS: _macs(rows),
        v.COST_SIZE_BYTES: model_size_bytes(model),
    }
    shape = (in_channels, *size)
    channels_last = config.trainer.channels_last

    def latency(batch: int, in_precision: str) -> float:
        return measure_latency(
            model,
            shape,  # type: ignore[arg-type]
            batch_size=batch,
            device=device,
            precision=in_precision,
            channels_last=channels_last,
            warmup=2 if batch == 1 else 1,
            min_repeats=3 if batch == 1 else 1,
            max_seconds=LATENCY_SECONDS,
        ).ms_per_image

    costs[v.COST_LATENCY_MS] = latency(1, FLOAT32)
    costs[v.COST_LATENCY_MS_BATCH] = latency(LATENCY_BATCH, FLOAT32)
    same = precision in (FLOAT32, "32-true")
    costs[v.COST_LATENCY_MS_TRIAL_PRECISION] = costs[v.COST_LATENCY_MS] if same else latency(1, precision)
    costs[v.COST_LATENCY_MS_BATCH_TRIAL_PRECISION] = (
        costs[v.COST_LATENCY_MS_BATCH] if same else latency(LATENCY_BATCH, precision)
    )
    costs[v.METRIC_COST_SECONDS] = time.perf_counter() - started
    return costs
