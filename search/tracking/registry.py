"""Models in MLflow: log a trained `InferenceModel` to its run, register it under an alias, download it.

A model is logged as an `mlflow.pytorch` model saved with `serialization_format="pt2"` (a
`torch.export` graph that MLflow checks to be free of pickle before loading), with convtune's own
model file (tensors and plain values only) as an extra file; the logged model is linked to its run
(MLflow 3's LoggedModel, the UI's Models column), and its registered version gets the alias.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import torch
from torch import Tensor

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

from search.errors import ConvtuneError, first_line
from search.tracking.model_store import MLFLOW_MODEL_NAME, MODEL_FILE, AnyModel
from search.tracking.resilience import call_with_retry
from search.tracking.settings import load_settings
from search.tracking.tracker import Tracker

CHAMPION_ALIAS = "champion"
ENSEMBLE_ALIAS = "ensemble"  # `reproduce --top-k K`: the ensemble of the K best distinct trials


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str
    model_uri: str

    @property
    def alias_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def log_and_register(
    model: AnyModel,
    tracker: Tracker,
    run_id: str,
    registered_name: str,
    *,
    example: Tensor,
    alias: str = CHAMPION_ALIAS,
    tags: Mapping[str, str] | None = None,
) -> RegisteredModel:
    """Logs `model` to the run, registers a new version under `registered_name`, points `alias` at it."""
    info = log_model(model, tracker, run_id, example=example)
    version = register_version(tracker, registered_name, info.model_id)
    tracker.register_model(registered_name, version, alias, dict(tags or {}))
    return RegisteredModel(registered_name, version, alias, info.model_uri)


def register_version(tracker: Tracker, name: str, model_id: str) -> str:
    """A new version of the registered model `name` for the logged model `model_id`, exactly one
    however often an outage cuts the attempt short: a retry first looks for the version that an
    attempt cut off after the server created it (registering again would add a second version)."""

    def attempt() -> str:
        existing = tracker.model_version_of(name, model_id)
        if existing is not None:
            return existing
        return str(mlflow.register_model(f"models:/{model_id}", name).version)

    return call_with_retry(attempt, what="registering the model")


def log_model(model: AnyModel, tracker: Tracker, run_id: str, *, example: Tensor) -> ModelInfo:
    """Logs `model` to the run (a LoggedModel linked to it). `info.model_uri` (`models:/m-...`) is
    what `predict` and `export` accept; `register_version` makes it a registered model's version."""
    # imported here: saves ~3 s at start-up for `predict`, `evaluate` and `export`, which only download
    # (mlflow.pytorch imports Lightning for its autologging)
    import mlflow.pytorch
    from mlflow.models import infer_signature

    example = example[:2].cpu()
    if example.shape[0] < 2:  # torch.export keeps a batch of one static
        example = example.repeat(2, 1, 1, 1)
    probabilities = model(example).detach().numpy()
    signature = infer_signature(example.numpy(), probabilities)
    with tempfile.TemporaryDirectory(prefix="convtune-model-") as folder:
        model_file = model.save(Path(folder) / MODEL_FILE)

        def attempt() -> ModelInfo:
            # a fresh LoggedModel per attempt: MLflow links a model to its run once and refuses a
            # second link (`UNIQUE constraint failed: inputs...`), so an attempt cut off by an outage
            # after that link must not be repeated with the same model
            model_id = tracker.new_logged_model(run_id, MLFLOW_MODEL_NAME)
            try:
                return mlflow.pytorch.log_model(
                    model,
                    name=MLFLOW_MODEL_NAME,
                    run_id=run_id,
                    model_id=model_id,
                    signature=signature,
                    input_example=example.numpy(),
                    serialization_format="pt2",
                    extra_files=[str(model_file)],
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                    metadata={"convtune": json.loads(model.description.to_json())},
                )
            except Exception:
                tracker.discard_logged_model(model_id)
                raise

        return call_with_retry(attempt, what="logging the model")


def download_model(uri: str) -> Path:
    """A local folder holding the MLflow model at `uri` (`models:/name@alias`, `runs:/<id>/model`),
    from this folder's tracking and registry stores (a server's proxied artifacts included)."""
    if uri.startswith("runs:/") and uri.rstrip("/").count("/") == 1:
        uri = f"{uri.rstrip('/')}/{MLFLOW_MODEL_NAME}"
    settings = load_settings()
    Tracker(settings)  # points mlflow at the tracking and registry stores
    try:
        return Path(call_with_retry(mlflow.artifacts.download_artifacts, artifact_uri=uri, what="download"))
    except Exception as error:
        raise ConvtuneError(
            f"cannot load model {uri} ({first_line(error, drop_period=True)}); check the name/alias or run "
            "id (`models:/<study>@champion`, `runs:/<run id>/model`) and the tracking store "
            f"({settings.source})."
        ) from None
