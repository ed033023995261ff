"""`convtune export`: a stored model (single or ensemble) as a TorchScript or an ONNX file.

Both take uint8 images (N, C, H, W) in 0..255 (TorchScript also floats in [0, 1]) and return class
probabilities; normalization and test-time augmentation are inside, and the model's description
(class names, input size) rides along as `convtune.json` (TorchScript) or the `convtune` metadata (ONNX).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from search.reproduce.ensemble_model import EnsembleModel
from search.tracking.model_store import AnyModel, InferenceModel


def export_torchscript(model: AnyModel, path: str | Path) -> Path:
    """A TorchScript file (`torch.jit.load`) taking uint8 or float images, returning probabilities;
    the description (class names, input size) rides along as the extra file `convtune.json`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros((2, model.in_channels, *model.image_size), dtype=torch.float32)
    if not isinstance(model, InferenceModel):
        return _export_ensemble_torchscript(model, example, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.served_network(), example)  # type: ignore[no-untyped-call]
        wrapper = torch.jit.script(_ScriptableModel(traced, model.mean, model.inv_std))  # type: ignore[no-untyped-call]
        wrapper.save(str(path), _extra_files={"convtune.json": model.description.to_json()})
    return path


def _export_ensemble_torchscript(model: EnsembleModel, example: Tensor, path: Path) -> Path:
    """Traced on float images in [0, 1] (each member's normalization and TTA inside); uint8 images
    are divided by 255 first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)  # type: ignore[no-untyped-call]
        wrapper = torch.jit.script(_ScriptableEnsemble(traced))  # type: ignore[no-untyped-call]
        wrapper.save(str(path), _extra_files={"convtune.json": model.description.to_json()})
    return path


class _ScriptableEnsemble(nn.Module):
    def __init__(self, ensemble: nn.Module) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, images: Tensor) -> Tensor:
        pixels = images.to(torch.float32) / 255 if images.dtype == torch.uint8 else images.to(torch.float32)
        return self.ensemble(pixels)


class _ScriptableModel(nn.Module):
    def __init__(self, network: nn.Module, mean: Tensor, inv_std: Tensor) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", mean.clone())
        self.register_buffer("inv_std", inv_std.clone())

    def forward(self, images: Tensor) -> Tensor:
        pixels = images.to(torch.float32) if images.dtype == torch.uint8 else images.to(torch.float32) * 255
        return self.network((pixels - self.mean) * self.inv_std).float().softmax(dim=1)


def export_onnx(model: AnyModel, path: str | Path) -> Path:
    """An ONNX file with input `images` (uint8, N x C x H x W, any N) and output `probabilities`;
    class names and input size are in its metadata (`convtune`, JSON)."""
    import onnx  # lazy: onnx is an optional dependency (the `export` extra); TorchScript needs none

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros((2, model.in_channels, *model.image_size), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes=[{0: torch.export.Dim("batch", min=1)}],
            external_data=False,
            verbose=False,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "convtune", model.description.to_json()
    onnx.save(proto, str(path))
    return path
