"""Loading weights into a model: the one loader for every model family and every source.

`load_weights(model, source)` takes a local file (a `model.state_dict()` file or a Lightning
checkpoint), an already-loaded state dict, or a URI (`is_uri`: `models:/...`, `runs:/...`, one of
`URI_SCHEMES`) that a resolver turns into a state dict; `lightning_modules` reads files only, and
convtune's search package resolves the URIs through MLflow. Backbones also take plain torchvision
state dicts, and a first conv whose input channel count differs is adapted (`adapt_input_conv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

WeightsResolver = Callable[[str], Mapping[str, Tensor]]
MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")  # what only an MLflow store resolves
URI_SCHEMES = (*MLFLOW_SCHEMES, "file:/", "s3://", "gs://", "http://", "https://")


def is_uri(text: str) -> bool:
    """Whether `text` names something by URI (`scheme:/...`) rather than a local path.

    Any scheme of two or more letters, digits, `+` or `-` counts (`models:/`, `s3://`, `ftp://`; a
    Windows drive `C:/` does not); convtune reads those of `URI_SCHEMES`.
    """
    scheme, sep, _ = text.partition(":/")
    return bool(sep) and len(scheme) > 1 and scheme.replace("-", "").replace("+", "").isalnum()


def unreadable_weights(text: str) -> ValueError:
    """The one-line error for a `weights` source convtune cannot read."""
    return ValueError(
        f"weights={text!r} is not a URI convtune can read; use models:/<name>@<alias>, "
        "runs:/<run id>/model, runs:/<run id>/<file> or a local file path."
    )


@runtime_checkable
class TorchvisionAdapted(Protocol):
    """A model that also loads the state dicts of the torchvision network it adapts."""

    def from_torchvision(self, state: dict[str, Tensor]) -> dict[str, Tensor]: ...


def first_conv_name(model: nn.Module) -> str:
    """Name of the first `nn.Conv2d` of `model` (in registration order)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer.")


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """First-conv weights for `in_channels` from weights for another count (timm's rule).

    One channel: the sum over the source channels. More: the source channels tiled and scaled by
    `source / in_channels` (the response to a constant image is kept when `source` divides it).
    """
    source = weight.shape[1]
    if in_channels == source:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / source)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (source / in_channels)


def _read(source: str | Path, resolver: WeightsResolver | None) -> Mapping[str, Any]:
    text = str(source)
    if is_uri(text):
        if not text.startswith(URI_SCHEMES):
            raise unreadable_weights(text)
        if resolver is None:
            raise ValueError(
                f"weights={text!r} is a URI; resolve it to a state dict first (convtune's search "
                "package does) and call load_weights(model, state_dict), or give a local path."
            )
        return resolver(text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(
            f"weights file {path} does not exist; give the path of a saved state dict or Lightning "
            "checkpoint (.pt, .pth, .ckpt), or remove weights."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"weights file {path} could not be loaded ({type(error).__name__}); it is corrupt, truncated "
            "or holds more than tensors: re-save it with torch.save(model.state_dict(), path)."
        ) from error


def _state_dict(loaded: Any, origin: str) -> dict[str, Tensor]:
    """Tensors of a state dict or checkpoint, with Lightning's `model.` prefixes removed."""
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ValueError(f"weights from {origin} are a {type(loaded).__name__}, not a state dict.")
    state = {str(k): v for k, v in loaded.items() if isinstance(v, Tensor)}
    if not state:
        raise ValueError(f"weights from {origin} hold no tensors; expected a state dict or checkpoint.")
    if any(key.startswith("model.") for key in state):
        state = {key.removeprefix("model."): v for key, v in state.items() if key.startswith("model.")}
    return state


def _list(label: str, keys: list[str], limit: int = 6) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{label} {', '.join(keys[:limit])}{more}"


def _match(
    state: dict[str, Tensor], target: dict[str, Tensor], first_conv: str
) -> tuple[dict[str, Tensor], list[str]]:
    """Tensors that fit `target` (without head modules that did not fit) and the body mismatches."""
    fit: dict[str, Tensor] = {}
    head_kept: set[str] = set()
    mismatched: list[str] = []
    for key, value in state.items():
        if key not in target:
            continue
        expected = target[key].shape
        if (
            key == first_conv
            and value.dim() == 4
            and value.shape[:1] + value.shape[2:] == expected[:1] + expected[2:]
        ):
            value = adapt_input_conv(value, expected[1])
        if value.shape == expected:
            fit[key] = value
        elif key.startswith("head."):
            head_kept.add(key.rpartition(".")[0])
        else:
            mismatched.append(f"{key} (file {tuple(value.shape)}, model {tuple(expected)})")
    return {k: v for k, v in fit.items() if k.rpartition(".")[0] not in head_kept}, mismatched


def _check_fit(
    model: nn.Module, origin: str, state: dict[str, Tensor], target: dict[str, Tensor], mismatched: list[str]
) -> None:
    missing = [
        k for k in target if k not in state and not k.startswith("head.") and "num_batches_tracked" not in k
    ]
    unexpected = [k for k in state if k not in target]
    problems = [
        _list(label, keys)
        for label, keys in (
            ("shape mismatch at", mismatched),
            ("missing in file:", missing),
            ("not in model:", unexpected),
        )
        if keys
    ]
    if problems:
        raise ValueError(
            f"weights from {origin} do not fit this {type(model).__name__}: {'; '.join(problems)}. Only the "
            "head may differ; build the model with the config the weights were trained with."
        )


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    resolver: WeightsResolver | None = None,
) -> list[str]:
    """Load weights into `model` in place from a file path or a state dict; return the names of
    the head tensors that were left at their fresh values.

    Accepts `model.state_dict()` files, Lightning checkpoints (`state_dict`, `model.` prefix) and,
    for backbones, plain torchvision state dicts. The first conv is adapted when only its input
    channel count differs. Head modules (`head.*`) whose shapes differ (another class count) are
    kept new; any other mismatch raises `ValueError` naming the layers. `resolver` turns a URI
    (`models:/...`, `runs:/...`, one of `URI_SCHEMES`) into a state dict.
    """
    origin = "the given state dict" if isinstance(source, Mapping) else str(source)
    loaded = source if isinstance(source, Mapping) else _read(source, resolver)
    state = _state_dict(loaded, origin)
    if isinstance(model, TorchvisionAdapted):
        state = model.from_torchvision(state)
    target = model.state_dict()
    fit, mismatched = _match(state, target, first_conv_name(model) + ".weight")
    _check_fit(model, origin, state, target, mismatched)
    model.load_state_dict(fit, strict=False)
    return sorted(k for k in target if k.startswith("head.") and k not in fit)
