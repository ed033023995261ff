"""What every trial and study leaves in MLflow besides metrics: tables and pictures."""

from __future__ import annotations

from pathlib import Path

from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.training import RunParts
from search.describe import architecture_markdown, layer_infos
from search.objective import ArtifactWriter


def write_architecture(parts: RunParts, config: RunConfig, best: BestWeights, folder: Path) -> None:
    """architecture.md: per layer output shape, receptive field, parameters, dense equivalent."""
    datamodule = parts.datamodule
    rows = layer_infos(config, datamodule.in_channels, datamodule.image_size, datamodule.num_classes)
    (folder / "architecture.md").write_text(architecture_markdown(rows))


def trial_writers() -> list[ArtifactWriter]:
    return [write_architecture]
