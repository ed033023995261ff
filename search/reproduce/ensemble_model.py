"""An ensemble of trained models as one inference module: the weighted mean of their probabilities.

Every member is an `InferenceModel` (its own normalization, network and test-time augmentation);
they share the class names and input shape. Stored like a single model (one torch file of tensors
and plain values, read back with `weights_only=True`) under its own format name; `predict`,
`evaluate`, `export` (ONNX and TorchScript, the members inside) and `explain` (per member) take it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from search.tracking.model_store import (
    ENSEMBLE_FORMAT,
    FORMAT_VERSION,
    PREDICT_BATCH,
    InferenceModel,
    ModelDescription,
    rebuild_network,
)


@dataclass(frozen=True)
class EnsembleDescription:
    """The members' descriptions, their weights and how the weights were chosen."""

    members: list[ModelDescription]
    weights: list[float]
    method: str  # "greedy" (selection with replacement) or "average"
    source: dict[str, str] | None = None
    member_runs: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return self.members[0].data

    @property
    def seed(self) -> int:
        return self.members[0].seed

    @property
    def model(self) -> dict[str, Any]:
        return {"name": "ensemble", "members": [member.model.get("name") for member in self.members]}

    def to_json(self) -> str:
        values = {
            "kind": "ensemble",
            "members": [json.loads(member.to_json()) for member in self.members],
            "weights": self.weights,
            "method": self.method,
            "source": self.source,
            "member_runs": self.member_runs,
            "class_names": self.members[0].class_names,
            "in_channels": self.members[0].in_channels,
            "image_size": list(self.members[0].image_size),
        }
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EnsembleDescription:
        values = json.loads(text)
        members = [ModelDescription.from_json(json.dumps(member)) for member in values["members"]]
        return cls(
            members,
            [float(w) for w in values["weights"]],
            str(values["method"]),
            values.get("source"),
            list(values.get("member_runs", [])),
        )


class EnsembleModel(nn.Module):
    """`forward(images)`: sum of weight_i * member_i(images), each member's class probabilities."""

    def __init__(
        self,
        members: Sequence[InferenceModel],
        weights: Sequence[float],
        *,
        method: str = "average",
        source: dict[str, str] | None = None,
        member_runs: Sequence[str] = (),
    ) -> None:
        super().__init__()
        _check_members(members, weights)
        total = float(sum(weights))
        self.members = nn.ModuleList(members)
        self.member_weights = [float(w) / total for w in weights]
        self.description = EnsembleDescription(
            [member.description for member in members], self.member_weights, method, source, list(member_runs)
        )
        first = members[0]
        self.class_names = list(first.class_names)
        self.in_channels = first.in_channels
        self.image_size = tuple(first.image_size)
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        return self.combine([member(images) for member in self.members])

    def combine(self, probabilities: Sequence[Tensor]) -> Tensor:
        """The ensemble's output from its members' outputs (class probabilities), in member order."""
        total = None
        for member_probabilities, weight in zip(probabilities, self.member_weights, strict=True):
            term = member_probabilities * weight
            total = term if total is None else total + term
        return total  # type: ignore[return-value]

    @torch.inference_mode()
    def predict(self, images: Tensor, batch_size: int = PREDICT_BATCH) -> Tensor:
        """Probabilities (N, classes) for uint8 (N, C, H, W) images of the members' size, in batches of
        `batch_size` inputs per member's forward pass (its test-time views included)."""
        self.check_input(images)
        step = max(1, batch_size // max(member.views for member in self.members))  # type: ignore[misc]
        chunks = [self(images[i : i + step]).cpu() for i in range(0, len(images), step)]
        return torch.cat(chunks) if chunks else torch.zeros(0, len(self.class_names))

    def check_input(self, images: Tensor) -> None:
        self.members[0].check_input(images)  # type: ignore[operator]

    def save(self, path: str | Path) -> Path:
        """One torch file: the description (JSON text) and one state dict per member."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        bundle = {
            "format": ENSEMBLE_FORMAT,
            "version": FORMAT_VERSION,
            "description": self.description.to_json(),
            "members": [
                {k: v.detach().cpu().contiguous() for k, v in member.network.state_dict().items()}
                for member in self.members
            ],
        }
        torch.save(bundle, path)
        return path


def _check_members(members: Sequence[InferenceModel], weights: Sequence[float]) -> None:
    if not members:
        raise ValueError("an ensemble needs at least one member.")
    if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"an ensemble needs one non-negative weight per member (some positive), but got {list(weights)}."
        )
    first = members[0]
    for index, member in enumerate(members[1:], start=1):
        if member.class_names != first.class_names or member.in_channels != first.in_channels:
            raise ValueError(f"ensemble member {index} predicts other classes or channels than member 0.")
        if tuple(member.image_size) != tuple(first.image_size):
            raise ValueError(
                f"ensemble member {index} takes {member.image_size} images, member 0 {first.image_size}."
            )


def ensemble_from_bundle(bundle: dict[str, Any]) -> EnsembleModel:
    """An `EnsembleModel` from a loaded file's content (raises KeyError/ValueError when damaged)."""
    description = EnsembleDescription.from_json(bundle["description"])
    members = []
    for member_description, state in zip(description.members, bundle["members"], strict=True):
        network = rebuild_network(member_description)
        network.load_state_dict(state)
        members.append(InferenceModel(network, member_description))
    return EnsembleModel(
        members,
        description.weights,
        method=description.method,
        source=description.source,
        member_runs=description.member_runs,
    )
