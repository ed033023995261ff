"""A network's cost: parameters, multiply-adds, size, latency."""

from __future__ import annotations

from lightning_modules.config import RunConfig
from lightning_modules.models.registry import model_from_config
from search.study.model_cost import measure_cost, static_cost
from tests.conftest import tiny_experiment


def test_static_cost_is_what_the_built_network_measures() -> None:
    raw = tiny_experiment()["model"] | {"channels": [8, 16], "hidden": [32]}
    config = RunConfig.model_validate({"model": raw, "data": {"dataset": "digits"}})
    model = model_from_config(config.model, in_channels=1, num_classes=10, image_size=(8, 8))
    measured = measure_cost(model, config, (1, (8, 8), 10))
    static = static_cost(config, (1, (8, 8), 10))
    assert static == {key: measured[key] for key in static}
    assert measured["cost/latency_ms"] > 0 and measured["cost/latency_ms_batch"] > 0
    assert measured["cost/latency_ms_trial_precision"] == measured["cost/latency_ms"]  # float32 trial
    assert 0 < measured["cost/measure_seconds"] < 1.0
