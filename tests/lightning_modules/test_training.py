"""From a `RunConfig` to a seeded datamodule, a wrapped model and a Trainer without its own logger."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.averaging import AveragedWeights
from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.training import build_datamodule, build_run, create_trainer, data_device
from tests.helpers.transfer_runs import seeded_convnet, transfer_config


def _digits(**sections: object) -> RunConfig:
    return RunConfig.model_validate({"data": {"dataset": "digits"}, "model": {"channels": [4]}, **sections})


def test_the_same_config_builds_the_same_run() -> None:
    first, again = build_run(_digits(seed=4)), build_run(_digits(seed=4))
    assert torch.equal(first.datamodule.val_labels, again.datamodule.val_labels)
    for a, b in zip(first.module.parameters(), again.module.parameters(), strict=True):
        assert torch.equal(a, b)
    other = build_run(_digits(seed=5))
    assert not torch.equal(first.module.model.head.fc.weight, other.module.model.head.fc.weight)


def test_trainer_seed_reseeds_weights_and_batches_but_not_the_splits() -> None:
    base = build_run(_digits(seed=4))
    reseeded = build_run(_digits(seed=4, trainer={"seed": 9}))
    assert reseeded.datamodule.seed == 4 and reseeded.datamodule.train_seed == 9
    for split in ("train_images", "val_images", "val_labels"):
        assert torch.equal(getattr(base.datamodule, split), getattr(reseeded.datamodule, split))
    assert not torch.equal(base.module.model.head.fc.weight, reseeded.module.model.head.fc.weight)
    first_batch = [next(iter(parts.datamodule.train_dataloader()))[1] for parts in (base, reseeded)]
    assert not torch.equal(*first_batch)
    same_as_seed = build_run(_digits(seed=9))  # trainer.seed 9 initializes as seed 9 does
    assert torch.equal(same_as_seed.module.model.head.fc.weight, reseeded.module.model.head.fc.weight)


def test_the_module_normalizes_with_the_data_or_the_pretraining_statistics() -> None:
    parts = build_run(_digits())
    mean = parts.datamodule.mean[0] * 255
    assert float(parts.module.mean.flatten()[0]) == pytest.approx(mean)
    backbone = build_run(_digits(model={"name": "resnet18", "weights": None, "pretrained": False}))
    assert float(backbone.module.mean.flatten()[0]) == pytest.approx(mean)  # no pretraining: the data's
    datamodule = build_datamodule(_digits(data={"dataset": "digits", "image_size": 10}))
    assert datamodule.image_size == (10, 10) and datamodule.sizes["train"] > 0


def test_data_stays_on_the_host_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    assert data_device("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert data_device("auto") is None and data_device("gpu", [1]) is None


def test_data_device_stays_on_host_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert data_device("cpu") is None
    assert data_device("auto") is None
    assert data_device("gpu", [0]) is None


def test_data_device_picks_the_trainers_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert data_device("cpu") is None
    assert data_device("auto") == torch.device("cuda", 0)
    assert data_device("gpu") == torch.device("cuda", 0)
    assert data_device("cuda", [3, 1]) == torch.device("cuda", 3)


def test_cpu_run_keeps_its_data_in_host_memory() -> None:
    parts = build_run(RunConfig(data={"dataset": "digits", "batch_size": 64}))
    images, _ = next(iter(parts.datamodule.val_dataloader()))
    assert images.device.type == "cpu"


def test_the_trainer_has_no_logger_and_averaging_comes_last() -> None:
    config = _digits(trainer={"max_epochs": 2, "weight_averaging": {"kind": "ema"}})
    best = BestWeights()
    trainer = create_trainer(config.trainer, callbacks=[best], accelerator="cpu")
    assert trainer.logger is None and trainer.max_epochs == 2
    callbacks = list(trainer.callbacks)  # type: ignore[attr-defined]
    (averaging,) = [c for c in callbacks if isinstance(c, AveragedWeights)]
    assert callbacks.index(best) < callbacks.index(averaging)  # averaged weights seen by every callback


def test_build_run_hands_weights_uris_to_the_resolver() -> None:
    source = seeded_convnet()
    asked: list[str] = []

    def resolver(uri: str) -> dict[str, torch.Tensor]:
        asked.append(uri)
        return source.state_dict()

    parts = build_run(transfer_config(weights="models:/pretrained@champion"), weights_resolver=resolver)
    assert asked == ["models:/pretrained@champion"]
    assert torch.equal(parts.module.model.blocks[1].conv0.weight, source.blocks[1].conv0.weight)
    with pytest.raises(ValueError, match="is a URI; resolve it to a state dict first"):
        build_run(transfer_config(weights="models:/pretrained@champion"))
