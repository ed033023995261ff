"""`search.inspect.gradcam`: where the evidence for a class is, and `explain_image`'s pictures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_modules.config import RunConfig
from lightning_modules.models.shapes import architecture_table
from lightning_modules.training import RunParts
from search.inspect.gradcam import cam_layer, explain_image, grad_cam
from tests.helpers.pictures import assert_png
from tests.helpers.tiny_runs import trained_convnet


@pytest.fixture(scope="module")
def trained() -> tuple[RunParts, RunConfig]:
    return trained_convnet()


def test_grad_cam_lights_up_where_the_evidence_for_the_class_is() -> None:
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        head.bias.zero_()
    network = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    image = torch.zeros(1, 1, 8, 8)
    image[..., :3, 5:] = 1.0  # the only evidence: a bright patch at the top right
    name, layer = cam_layer(network)
    assert name == "0"
    cam, probabilities = grad_cam(network, image, layer)
    assert cam.shape == (8, 8)
    assert float(cam[:3, 5:].min()) == pytest.approx(1.0)
    assert float(cam[3:].max()) == 0 and float(cam[:, :5].max()) == 0
    assert int(probabilities.argmax()) == 0 and float(probabilities.sum()) == pytest.approx(1.0)


def test_explain_image_on_a_trained_module(trained: tuple, tmp_path: Path) -> None:
    parts, config = trained
    module, datamodule = parts.module.eval(), parts.datamodule
    image = datamodule.val_images[:1]
    rows = architecture_table(config.model, 1, datamodule.image_size, datamodule.num_classes)
    result = explain_image(module.model, module.prepare(image), image, datamodule.class_names, tmp_path, rows)
    names = {p.name for p in result.paths}
    assert {"gradcam.png", "filters.png", "architecture.png", "feature_maps_block0.png"} <= names
    for path in result.paths:
        assert_png(path)
    assert result.predicted == int(module(image).argmax())
