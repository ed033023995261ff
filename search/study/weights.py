"""Pre-trained weights for fine-tuning: `model.weights` URIs resolved, and checked before any trial.

`model.weights` takes a local file (read by `lightning_modules`) or an MLflow URI, which only this
package can read: `models:/<name>@<alias>` (e.g. the champion of another study, registered by
`convtune reproduce`), `runs:/<run id>/model`, or `runs:/<run id>/<file>` for a state dict or
checkpoint logged as an artifact; a convtune model elsewhere (`file:/`, `s3://`, a path) gives its
network's weights too. `resolve_weights` is the one resolver that trials (the objective) and
reproductions hand to `build_run`; `check_weights` runs at preflight so that a missing or corrupt
file, an unknown URI, weights that do not fit the model or a `freeze: until:<layer>` naming no layer
is one line before anything is trained.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_modules.models.config import BackboneConfig, ConvNetConfig
from lightning_modules.models.freezing import apply_freeze
from lightning_modules.models.registry import model_from_config
from lightning_modules.models.weights import (
    MLFLOW_SCHEMES,
    URI_SCHEMES,
    WeightsResolver,
    is_uri,
    unreadable_weights,
)
from search.errors import ConfigError, ConvtuneError, first_line
from search.experiment.spec import ExperimentSpec
from search.study.feasibility import infeasibility
from search.tracking import load_settings
from search.tracking.model_store import load_inference_model, single_model

_CACHE_SIZE = 4
_cache: OrderedDict[tuple[str, str], dict[str, Tensor]] = OrderedDict()


def resolve_weights(uri: str) -> dict[str, Tensor]:
    """The state dict stored at an MLflow `uri`, from the tracking store of this folder's mlflow.yml.

    A folder (an MLflow model logged by convtune) gives its network's state dict; a single file
    (a logged state dict, Lightning checkpoint or convtune model file) is read with
    `weights_only=True`. The last few results are cached per process, so the trials of a worker
    download a model once. Any other source (a path, `file:/`, a store MLflow reads) must be a
    convtune model (`_model_weights`). Raises `ConvtuneError` when the model cannot be found or read.
    """
    # lazy: registry imports MLflow, which `convtune check` (preflight imports this module) must not
    from search.tracking.registry import download_model

    if not uri.startswith(MLFLOW_SCHEMES):
        return _model_weights(uri)
    key = (load_settings().tracking_uri, uri)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    state = _state_dict_at(download_model(uri), uri)
    _cache[key] = state
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return state


def _model_weights(source: str) -> dict[str, Tensor]:
    """The network's state dict of a convtune model at a path or a URI outside MLflow's stores."""
    readable = source.startswith(URI_SCHEMES) if is_uri(source) else Path(source).expanduser().exists()
    if not readable:
        raise unreadable_weights(source)
    return single_model(load_inference_model(source), source).network.state_dict()


def _state_dict_at(local: Path, uri: str) -> dict[str, Tensor]:
    if local.is_dir():
        return single_model(load_inference_model(str(local)), uri).network.state_dict()
    try:
        loaded = torch.load(local, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConvtuneError(
            f"weights {uri} could not be loaded ({type(error).__name__}); it is corrupt or holds more "
            "than tensors: log torch.save(model.state_dict(), path) as the artifact."
        ) from None
    if not isinstance(loaded, dict):
        raise ConvtuneError(f"weights {uri} hold a {type(loaded).__name__}, not a state dict or checkpoint.")
    return loaded


# ----------------------------------------------------------------------------- preflight


def check_weights(
    spec: ExperimentSpec,
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    resolver: WeightsResolver = resolve_weights,
) -> None:
    """Build the base model with every `model.weights` the experiment can use and apply every
    `model.freeze` it can take; the first problem becomes one `ConfigError` line.

    Does nothing for an experiment that sets neither (so no pretrained download is triggered), or
    whose base architecture cannot run (its trials are checked when built).
    """
    run = spec.run_config()
    base = run.model
    sources = _values(spec, "model.weights", base.weights)
    freezes = _values(spec, "model.freeze", base.freeze)
    if (sources == [None] and freezes == ["none"]) or infeasibility(run, in_channels, image_size):
        return  # nothing to check, or a base architecture that only some trials change into a working one
    for source in sources:
        config = _without_download(base, source)
        try:
            model = model_from_config(
                config,
                in_channels=in_channels,
                num_classes=num_classes,
                image_size=image_size,
                weights_resolver=resolver,
            )
            for freeze in freezes:
                apply_freeze(model, freeze)
        except (ValueError, ConvtuneError) as error:
            raise ConfigError(f"model: {first_line(error, None)}") from None


def _values(spec: ExperimentSpec, key: str, base: Any) -> list[Any]:
    param = spec.search.space.get(key)
    candidates = param.choice if param is not None and param.choice is not None else []
    return list(dict.fromkeys([base, *candidates]))


def _without_download(
    base: ConvNetConfig | BackboneConfig, source: str | None
) -> ConvNetConfig | BackboneConfig:
    """The base model config with `weights=source` and `freeze: none`; without weights a backbone
    is checked un-pretrained (its layers are the same, and nothing is downloaded)."""
    update: dict[str, Any] = {"weights": source, "freeze": "none"}
    if isinstance(base, BackboneConfig) and source is None:
        update["pretrained"] = False
    return base.model_copy(update=update)
