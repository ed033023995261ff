"""`search.reproduce.retrain`: the kept (averaged) weights are the ones stored and exported."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnxruntime
import pytorch_lightning as pl
import torch

from search.reproduce.export import export_onnx
from search.reproduce.retrain import raw_inference_model, to_inference_model, train
from search.tracking.model_store import load_inference_model
from tests.helpers.tiny_runs import tiny_run_config


class RawAtEnd(pl.Callback):
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state = copy.deepcopy(pl_module.model.state_dict())


def test_ema_weights_are_the_ones_stored_and_exported(tmp_path: Path) -> None:
    raw = RawAtEnd()
    config = tiny_run_config(weight_averaging={"kind": "ema", "decay": 0.9})
    parts, best, weights, _ = train(config, "val/acc", "maximize", callbacks=[raw])
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


def test_the_final_raw_weights_are_kept_aside_to_measure_what_averaging_added() -> None:
    raw = RawAtEnd()
    config = tiny_run_config(weight_averaging={"kind": "ema", "decay": 0.9})
    parts, best, _, raw_state = train(config, "val/acc", "maximize", callbacks=[raw])
    assert raw_state is not None
    for key, value in raw.state.items():
        assert torch.equal(raw_state[f"model.{key}"], value), key
    kept = to_inference_model(parts, config, {})
    raw_model = raw_inference_model(parts, config, {}, raw_state)
    for key, value in raw_model.network.state_dict().items():
        assert torch.equal(value, raw.state[key]), key
    images = parts.datamodule.val_images[:16]
    assert not torch.allclose(kept.predict(images), raw_model.predict(images))
    assert best.best_state is not None  # the module keeps the best epoch's averaged weights
    for key, value in parts.module.model.state_dict().items():
        assert torch.equal(value, best.best_state[f"model.{key}"]), key


def test_without_averaging_there_are_no_raw_weights_aside() -> None:
    *_, raw_state = train(tiny_run_config(), "val/acc", "maximize")
    assert raw_state is None
