"""`search.reproduce.export`: test-time augmentation is inside predict, the saved file, ONNX, TorchScript."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import torch

from search.reproduce.export import export_onnx, export_torchscript
from search.tracking.model_store import InferenceModel, load_inference_model
from tests.helpers.tiny_runs import untrained_model


def test_tta_is_inside_predict_the_saved_file_onnx_and_torchscript(tmp_path: Path) -> None:
    model = untrained_model(["HorizontalFlip"])
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        x = model.normalize(images)
        expected = ((model.network(x) + model.network(x.flip(3))) / 2).softmax(dim=1)
    assert not torch.allclose(model.with_tta([]).predict(images), expected, atol=1e-4)
    assert model.tta == ["HorizontalFlip"]
    _assert_the_stored_and_exported_models_give(expected, model, images, tmp_path)


def test_a_shift_is_inside_the_saved_file_onnx_and_torchscript_with_black_borders(tmp_path: Path) -> None:
    moved = "Affine(translate_px={x: -2, y: 1})"
    model = untrained_model(["HorizontalFlip", moved])
    images = torch.randint(1, 256, (3, 1, 8, 8), dtype=torch.uint8)
    shifted = torch.zeros_like(images)
    shifted[..., 1:, :-2] = images[..., :-1, 2:]  # two pixels left, one down, black where uncovered
    with torch.no_grad():
        views = [images, images.flip(3), shifted]
        expected = torch.stack([model.network(model.normalize(x)) for x in views]).mean(0).softmax(dim=1)
    assert model.tta == ["HorizontalFlip", moved]
    _assert_the_stored_and_exported_models_give(expected, model, images, tmp_path)


def _assert_the_stored_and_exported_models_give(
    expected: torch.Tensor, model: InferenceModel, images: torch.Tensor, tmp_path: Path
) -> None:
    """predict, the saved file (with its TTA list), ONNX and TorchScript all give `expected`."""
    assert torch.allclose(model.predict(images), expected, atol=1e-6)
    loaded = load_inference_model(str(model.save(tmp_path / "model.pt")))
    assert loaded.tta == model.tta
    assert torch.allclose(loaded.predict(images), expected, atol=1e-6)
    session = onnxruntime.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")))
    (output,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    scripted = torch.jit.load(str(export_torchscript(model, tmp_path / "m.ts")))
    assert torch.allclose(scripted(images), expected, atol=1e-5)
