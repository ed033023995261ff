"""Trained models as self-contained inference modules: what one holds, saving it and loading it back.

An `InferenceModel` holds the classifier (`.network`), the training normalization, the class names and
the input shape; it takes uint8 images (N, C, H, W) in 0..255 or float images in [0, 1] and returns
class probabilities. Nothing else (no convtune config) is needed to use it.

Storage and security: a model is saved as one torch file holding only tensors and plain values
(`{"format", "version", "description" (JSON text), "state_dict"}`) and read back with
`torch.load(..., weights_only=True)`; the network is rebuilt from the description with convtune's
model registry. In MLflow the same file rides along as an extra file of an `mlflow.pytorch` model
saved with `serialization_format="pt2"` (a `torch.export` graph that MLflow checks to be free of
pickle before loading), so MLflow users can serve it without convtune, and nothing here unpickles
arbitrary objects. Logging and registering happen in `search.tracking.registry`, exporting in
`search.reproduce.export`, feeding image files in `search.reproduce.images`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from pydantic import TypeAdapter, ValidationError
from torch import Tensor, nn

from lightning_modules.models.registry import ModelConfig, model_from_config
from lightning_modules.models.weights import is_uri
from lightning_modules.tta import TTAWrapper, average_views
from lightning_modules.tta_config import check_image_size, check_tta
from search.errors import ConfigError, ConvtuneError, first_line

if TYPE_CHECKING:
    from search.reproduce.ensemble_model import EnsembleModel

MODEL_FORMAT = "convtune-model"
ENSEMBLE_FORMAT = "convtune-ensemble"  # search.reproduce.ensemble_model
FORMAT_VERSION = 1
MODEL_FILE = "convtune_model.pt"
MLFLOW_MODEL_NAME = "model"
_INIT_ONLY_FIELDS = {"weights": None, "pretrained": False, "freeze": "none", "unfreeze_after": None}
# Inputs per forward pass in `predict`, test-time views included. Float32 inference of the headline's
# widest net (32-64-128, two convs per block) with 6 views on 2 Zen 4 cores: ~2,540 img/s with
# channels_last weights at 128 inputs per pass, ~1,090 in NCHW with 512 images' views in one pass
# (3,072 inputs); on one thread ~1,550 against ~590 (benchmarks/inference_batch.py).
PREDICT_BATCH = 128


@dataclass(frozen=True)
class ModelDescription:
    """Everything needed to rebuild and feed the network; stored as JSON next to its weights."""

    model: dict[str, Any]
    in_channels: int
    image_size: tuple[int, int]
    class_names: list[str]
    mean: list[float]
    std: list[float]
    data: dict[str, Any]
    seed: int = 0
    source: dict[str, str] | None = None
    tta: list[str] = field(default_factory=list)  # test-time augmentation's transforms (none: off)

    def to_json(self) -> str:
        values = self.__dict__ | {"image_size": list(self.image_size)}
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelDescription:
        values = json.loads(text)
        values["image_size"] = tuple(values["image_size"])
        return cls(**values)


class InferenceModel(nn.Module):
    """Normalization + network (+ test-time augmentation) + class names; `forward` maps images to
    class probabilities. With `description.tta`, the logits are averaged over each image and its
    transforms (`lightning_modules.tta`), in `predict`, `evaluate` and the exported files alike."""

    def __init__(self, network: nn.Module, description: ModelDescription) -> None:
        super().__init__()
        channels = description.in_channels
        if len(description.mean) != channels or len(description.std) != channels:
            raise ValueError(
                f"mean and std need {channels} values (one per channel), "
                f"but got {description.mean} and {description.std}."
            )
        self.network = network.to(memory_format=torch.channels_last)  # in place: the same network
        self.description = description
        self.class_names = list(description.class_names)
        self.in_channels = channels
        self.image_size = tuple(description.image_size)
        self.tta = check_tta(description.tta)
        check_image_size(self.tta, description.image_size)
        # the same arithmetic as ClassifierModule.prepare, so results match the training's
        self.register_buffer(
            "mean", torch.tensor(description.mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        )
        self.register_buffer(
            "inv_std", 1 / (torch.tensor(description.std, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        )
        self.eval()

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images in 0..255, or float images in [0, 1], to the network's normalized input."""
        pixels = images.to(torch.float32) if images.dtype == torch.uint8 else images.to(torch.float32) * 255
        return (pixels - self.mean) * self.inv_std

    @property
    def black(self) -> Tensor:
        """The normalized value of a 0 pixel: what a test-time shift fills uncovered pixels with."""
        return -self.mean * self.inv_std

    def logits(self, images: Tensor) -> Tensor:
        return average_views(self.network, channels_last(self.normalize(images)), self.tta, self.black)

    def served_network(self) -> nn.Module:
        """The network as it is served on normalized images: inside a `TTAWrapper` when it has TTA."""
        return TTAWrapper(self.network, self.tta, self.black) if self.tta else self.network

    def with_tta(self, transforms: Sequence[str]) -> InferenceModel:
        """The same network (shared, not copied) with test-time augmentation over `transforms`."""
        return InferenceModel(self.network, replace(self.description, tta=list(transforms)))

    def forward(self, images: Tensor) -> Tensor:
        return self.logits(images).float().softmax(dim=1)

    @property
    def views(self) -> int:
        """Forward passes per image: the image and each test-time transform."""
        return 1 + len(self.tta)

    @torch.inference_mode()
    def predict(self, images: Tensor, batch_size: int = PREDICT_BATCH) -> Tensor:
        """Probabilities (N, classes) for uint8 (N, C, H, W) images of the model's size, in batches of
        `batch_size` inputs (each image's test-time views included)."""
        self.check_input(images)
        device = self.mean.device
        step = max(1, batch_size // self.views)
        chunks = [self(images[i : i + step].to(device)).cpu() for i in range(0, len(images), step)]
        return torch.cat(chunks) if chunks else torch.zeros(0, len(self.class_names))

    def check_input(self, images: Tensor) -> None:
        expected = (self.in_channels, *self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"the model takes images of shape (N, {', '.join(map(str, expected))}), "
                f"but got {tuple(images.shape)}; use prepare_images() to resize and convert them."
            )

    def save(self, path: str | Path) -> Path:
        """One torch file of tensors and plain values, readable with `torch.load(weights_only=True)`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        bundle = {
            "format": MODEL_FORMAT,
            "version": FORMAT_VERSION,
            "description": self.description.to_json(),
            "state_dict": state,
        }
        torch.save(bundle, path)
        return path


# ---------------------------------------------------------------------------------------------------
# building and loading


def channels_last(images: Tensor) -> Tensor:
    """A 4-d batch in channels_last memory (convolutions with channels_last weights run faster on
    it); other tensors as they are."""
    return images.contiguous(memory_format=torch.channels_last) if images.dim() == 4 else images


def inference_model_from_run(
    network: nn.Module,
    *,
    model_config: dict[str, Any],
    data_config: dict[str, Any],
    in_channels: int,
    image_size: tuple[int, int],
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = 0,
    source: dict[str, str] | None = None,
    tta: Sequence[str] = (),
) -> InferenceModel:
    """Wraps a trained network (moved to the CPU, contiguous layout) with what inference needs."""
    description = ModelDescription(
        model=dict(model_config),
        in_channels=int(in_channels),
        image_size=(int(image_size[0]), int(image_size[1])),
        class_names=[str(name) for name in class_names],
        mean=[float(m) for m in mean],
        std=[float(s) for s in std],
        data=dict(data_config),
        seed=int(seed),
        source=source,
        tta=list(tta),
    )
    network = network.to("cpu", memory_format=torch.contiguous_format)
    return InferenceModel(network, description)


def rebuild_network(description: ModelDescription) -> nn.Module:
    """The network's architecture from its config; pre-trained weights and freezing are left out."""
    values = dict(description.model)
    for key, neutral in _INIT_ONLY_FIELDS.items():
        if key in values:
            values[key] = neutral
    config = TypeAdapter(ModelConfig).validate_python(values)
    return model_from_config(
        config,
        in_channels=description.in_channels,
        num_classes=len(description.class_names),
        image_size=description.image_size,
    )


def single_model(model: AnyModel, uri: str) -> InferenceModel:
    """`model` when it is one network; a `ConvtuneError` for an ensemble where one network is needed."""
    if isinstance(model, InferenceModel):
        return model
    raise ConvtuneError(
        f"{uri} is an ensemble of {len(model.members)} models; model.weights takes a single model "
        "(models:/<name>@champion or a member's runs:/<run id>/model)."
    )


AnyModel: TypeAlias = "InferenceModel | EnsembleModel"


def _read_model_file(path: Path) -> AnyModel:
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = first_line(error, drop_period=True)
        if reason.startswith("Weights only load failed"):
            reason = "not a torch file, or one holding objects other than tensors and plain values"
        raise ConvtuneError(
            f"{path} is not a readable model file ({reason}); "
            "point to a file written by convtune (an MLflow model folder or its convtune_model.pt)."
        ) from None
    if not isinstance(bundle, dict) or bundle.get("format") not in (MODEL_FORMAT, ENSEMBLE_FORMAT):
        raise ConvtuneError(
            f"{path} is a torch file but not a convtune model (no format={MODEL_FORMAT!r} entry); "
            "use a model written by `convtune reproduce` or InferenceModel.save()."
        )
    if bundle.get("version") != FORMAT_VERSION:
        raise ConvtuneError(
            f"{path} has model format version {bundle.get('version')}, this convtune reads "
            f"version {FORMAT_VERSION}; upgrade convtune or rerun `convtune reproduce`."
        )
    try:
        if bundle["format"] == ENSEMBLE_FORMAT:
            from search.reproduce.ensemble_model import (
                ensemble_from_bundle,  # here: that module imports this one
            )

            return ensemble_from_bundle(bundle)
        description = ModelDescription.from_json(bundle["description"])
        network = rebuild_network(description)
        network.load_state_dict(bundle["state_dict"])
        return InferenceModel(network, description)
    except (KeyError, TypeError, ValueError, RuntimeError, ValidationError) as error:
        raise ConvtuneError(
            f"{path} holds a damaged convtune model ({first_line(error, drop_period=True)}); "
            "rerun `convtune reproduce`."
        ) from None


def _model_file_in(folder: Path) -> Path:
    for candidate in (folder / "extra_files" / MODEL_FILE, folder / MODEL_FILE):
        if candidate.is_file():
            return candidate
    if (folder / "MLmodel").is_file():
        raise ConvtuneError(
            f"{folder} is an MLflow model without convtune's extra_files/{MODEL_FILE}; "
            "load it with mlflow.pytorch.load_model, or use a model logged by `convtune reproduce`."
        )
    raise ConvtuneError(f"{folder} holds no model (no MLmodel or {MODEL_FILE}); check the path.")


def load_inference_model(uri_or_path: str) -> AnyModel:
    """An `InferenceModel` (or an `EnsembleModel`, `@ensemble`) from `models:/name@alias`,
    `runs:/<id>/model`, an MLflow model folder or a saved model file; any problem is one
    `ConvtuneError` line."""
    text = str(uri_or_path).strip()
    if not text:
        raise ConfigError("MODEL is empty; give models:/<name>@champion, runs:/<run id>/model or a path.")
    if is_uri(text) and not text.startswith("file:"):
        from search.tracking.registry import download_model  # lazy: MLflow (~1 s) only for a URI

        return _read_model_file(_model_file_in(download_model(text)))
    path = Path(text.removeprefix("file://")).expanduser()
    if path.is_dir():
        return _read_model_file(_model_file_in(path))
    if path.is_file():
        return _read_model_file(path)
    raise ConvtuneError(
        f"model {text} not found: no such file or folder; give models:/<name>@champion, "
        "runs:/<run id>/model, an MLflow model folder or a saved model file."
    )
