"""`search.parallel.plan`: worker slots for `--devices/--workers/--trials-per-device`."""

from __future__ import annotations

import pytest

from search.errors import ConfigError
from search.experiment.spec import validate_experiment
from search.parallel.plan import WorkerSlot, plan_workers, with_slot_loaders
from tests.conftest import tiny_experiment


def test_cpu_workers_share_the_cores_and_hide_the_gpus() -> None:
    slots = plan_workers("cpu", 2, cores=16, gpus=["0"])
    assert [s.label for s in slots] == ["cpu:0", "cpu:1"]
    assert {s.threads for s in slots} == {8}
    env = slots[1].env({})
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "8"
    assert plan_workers("cpu", 3, cores=16, gpus=[])[0].loader_workers == 0
    assert plan_workers("cpu", 2, cores=7, gpus=[])[0].loader_workers == 0
    assert plan_workers("auto", None, cores=2, gpus=[]) == [WorkerSlot(0, "cpu")]


def test_gpu_plans_use_physical_ids_and_pack_trials_per_device() -> None:
    slots = plan_workers("0,1", None, 2, gpus=["2", "3"])
    assert [s.label for s in slots] == ["cuda:2", "cuda:2", "cuda:3", "cuda:3"]
    assert slots[2].env({})["CUDA_VISIBLE_DEVICES"] == "3"
    assert [s.label for s in plan_workers("auto", gpus=["0", "1", "2"])] == ["cuda:0", "cuda:1", "cuda:2"]
    pairs = plan_workers("0,1,2,3", gpus_per_trial=2, gpus=["0", "1", "2", "3"])
    assert [s.gpus for s in pairs] == [("0", "1"), ("2", "3")]


@pytest.mark.parametrize(
    ("devices", "workers", "per_device", "message"),
    [
        ("0,1", None, 1, "names GPUs, but this machine has 0 visible GPUs"),
        ("0,x", None, 1, "takes 'auto', 'cpu' or GPU ids"),
        ("0,0", None, 1, "distinct GPU ids"),
        ("cpu", 0, 1, "--workers must be at least 1"),
        ("cpu", 2, 2, "--trials-per-device is for GPUs"),
    ],
)
def test_impossible_device_plans_are_config_errors(
    devices: str, workers: int | None, per_device: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_workers(devices, workers, per_device, gpus=[])


def test_naming_a_gpu_beyond_the_visible_ones_says_how_many_there_are() -> None:
    with pytest.raises(ConfigError, match="names GPU 1, but only 1 GPU is visible"):
        plan_workers("0,1", gpus=["0"])


def test_auto_data_loaders_become_the_slots_and_a_set_number_stays() -> None:
    spec = validate_experiment(tiny_experiment())
    auto = spec.model_copy(update={"data": spec.data.model_copy(update={"num_workers": "auto"})})
    assert with_slot_loaders(auto, 0).data.num_workers == 0
    assert with_slot_loaders(auto, None) is auto
    fixed = spec.model_copy(update={"data": spec.data.model_copy(update={"num_workers": 3})})
    assert with_slot_loaders(fixed, 0).data.num_workers == 3
