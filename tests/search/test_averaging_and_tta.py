"""Averaged weights and test-time augmentation reach the stored and exported model; TTA is chosen
on the validation split."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from lightning_modules.config import EvaluateConfig, RunConfig
from lightning_modules.training import build_run
from search.reproduce.retrain import to_inference_model, train
from search.reproduce.selection import choose_tta
from search.tracking.model_store import InferenceModel, export_onnx, export_torchscript, load_inference_model


def _config(**trainer: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"dataset": "digits", "batch_size": 64},
            "model": {"name": "convnet", "channels": [8, 16]},
            "optim": {"name": "adamw", "lr": 3e-3},
            "trainer": {"max_epochs": 2, **trainer},
        }
    )


class RawAtEnd(pl.Callback):
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state = copy.deepcopy(pl_module.model.state_dict())


def _untrained_model(tta: list[str]) -> InferenceModel:
    config = _config()
    parts = build_run(config)
    parts.module.eval()
    return to_inference_model(parts, config, {"test": "yes"}).with_tta(tta)


def test_ema_weights_are_the_ones_stored_and_exported(tmp_path: Path) -> None:
    import onnxruntime

    raw = RawAtEnd()
    config = _config(weight_averaging={"kind": "ema", "decay": 0.9})
    parts, best, weights = train(config, "val/acc", "maximize", callbacks=[raw])
    assert weights == "ema"
    model = to_inference_model(parts, config, {"test": "yes"})
    stored = load_inference_model(str(model.save(tmp_path / "model.pt"))).network.state_dict()
    assert best.best_state is not None
    for key, value in stored.items():
        assert torch.equal(value, best.best_state[f"model.{key}"]), key
    assert any(not torch.equal(stored[k], raw.state[k]) for k in stored if stored[k].is_floating_point())
    images = parts.datamodule.val_images[:7]
    session = onnxruntime.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")))
    (output,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(output, model.predict(images).numpy(), atol=1e-5)


def test_tta_is_inside_predict_the_saved_file_onnx_and_torchscript(tmp_path: Path) -> None:
    import onnxruntime

    model = _untrained_model(["HorizontalFlip"])
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        x = model.normalize(images)
        expected = ((model.network(x) + model.network(x.flip(3))) / 2).softmax(dim=1)
    assert torch.allclose(model.predict(images), expected, atol=1e-6)
    assert not torch.allclose(model.with_tta([]).predict(images), expected, atol=1e-4)
    loaded = load_inference_model(str(model.save(tmp_path / "model.pt")))
    assert loaded.tta == ["HorizontalFlip"]
    assert torch.allclose(loaded.predict(images), expected, atol=1e-6)
    session = onnxruntime.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")))
    (output,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    scripted = torch.jit.load(str(export_torchscript(model, tmp_path / "m.ts")))
    assert torch.allclose(scripted(images), expected, atol=1e-5)


def test_tta_is_kept_only_when_it_raises_the_validation_accuracy() -> None:
    model = _untrained_model([])
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    labels = model.predict(images).argmax(dim=1)  # the plain model is right on every image
    auto = choose_tta(model, EvaluateConfig(tta=["HorizontalFlip"]), images, labels)
    assert auto.plain_accuracy == 1.0 and auto.tta_accuracy is not None
    assert auto.kept == (auto.tta_accuracy > 1.0) and not auto.kept and auto.model.tta == []
    always = choose_tta(model, EvaluateConfig(tta=["HorizontalFlip"], tta_keep="always"), images, labels)
    assert always.kept and always.model.tta == ["HorizontalFlip"]
    flipped_labels = model.with_tta(["HorizontalFlip"]).predict(images).argmax(dim=1)
    favoured = choose_tta(model, EvaluateConfig(tta=["HorizontalFlip"]), images, flipped_labels)
    assert favoured.kept == (favoured.tta_accuracy > favoured.plain_accuracy)  # type: ignore[operator]
    assert choose_tta(model, EvaluateConfig(), images, labels).metrics() == {}
