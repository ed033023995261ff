"""Test-time augmentation: logits averaged over deterministic transforms, in a wrapped network and in
validation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lightning_modules.config import RunConfig
from lightning_modules.training import build_run
from lightning_modules.tta import VIEWS, TTAWrapper, average_views
from lightning_modules.tta_config import TRANSFORMS


def _parts(**evaluate: Any) -> Any:
    config = RunConfig.model_validate(
        {"data": {"dataset": "digits"}, "model": {"channels": [4, 8]}, "evaluate": evaluate}
    )
    parts = build_run(config)
    parts.module.eval()
    return parts


@pytest.mark.parametrize("transforms", [["HorizontalFlip"], ["HorizontalFlip", "VerticalFlip", "Transpose"]])
def test_tta_output_equals_the_mean_of_the_transformed_inputs_outputs(transforms: list[str]) -> None:
    network = _parts().module.model
    images = torch.randn(5, 1, 8, 8)
    expected = torch.stack([network(images)] + [network(VIEWS[name](images)) for name in transforms]).mean(0)
    with torch.no_grad():
        assert torch.allclose(TTAWrapper(network, transforms)(images), expected, atol=1e-6)
        assert torch.allclose(average_views(network, images, transforms), expected, atol=1e-6)
    assert torch.equal(VIEWS["HorizontalFlip"](images), images.flip(3))


def test_validation_averages_the_logits_when_asked() -> None:
    parts = _parts(tta=["HorizontalFlip"], tta_in_validation=True)
    module = parts.module
    assert module.val_tta == ["HorizontalFlip"]
    images, labels = parts.datamodule.val_images[:6], parts.datamodule.val_labels[:6]
    with torch.no_grad():
        _, logits, _ = module.model_step((images, labels), module.val_tta)
        x = module.prepare(images)
        expected = (module.model(x) + module.model(x.flip(3))) / 2
    assert torch.allclose(logits, expected, atol=1e-6)
    assert _parts(tta=["HorizontalFlip"]).module.val_tta == []  # only when asked


def test_every_transform_a_config_may_name_has_its_tensor_op() -> None:
    assert tuple(VIEWS) == TRANSFORMS
