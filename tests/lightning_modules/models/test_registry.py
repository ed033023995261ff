"""The model families and the registry: every registered model builds and runs, dimensions and
config fields are checked, and each family gets its config class and its architecture table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_modules.config import RunConfig
from lightning_modules.models.backbones import BackboneClassifier
from lightning_modules.models.config import BackboneConfig, ConvNetConfig
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.registry import (
    FAMILIES,
    create_model,
    family,
    has_arithmetic_table,
    layer_table,
    list_models,
    model_from_config,
    register_model,
)
from lightning_modules.models.shapes import architecture_table
from lightning_modules.models.tracing import traced_table
from tests.helpers.fresh_imports import imported_packages

BACKBONES = [
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg11_bn",
    "vgg16",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "inception_v3",
]


SMALL = {"channels": [4, 8]}


def _cases() -> list[tuple[str, int, int]]:
    cases = []
    for name in list_models():
        sizes = [(1, 8), (3, 8), (1, 28), (3, 28)] if name == "convnet" else [(1, 8), (3, 28)]
        cases += [(name, channels, size) for channels, size in sizes]
    return cases


def test_registry_lists_convnet_and_backbones() -> None:
    assert set(list_models()) >= {"convnet", *BACKBONES}
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize(("name", "in_channels", "size"), _cases())
def test_every_model_runs_forward(name: str, in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=5, image_size=(size, size))
    model.train()
    out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    assert isinstance(model.backbone, nn.Module) and isinstance(model.head, nn.Module)


def test_unknown_model_names_the_available_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown model 'foo'; available: convnet, efficientnet_b0, .*resnet18"
    ):
        create_model("foo", in_channels=1, num_classes=2, image_size=(8, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 0, "num_classes": 2, "image_size": (8, 8)}, "in_channels must be an int >= 1"),
        ({"in_channels": 1, "num_classes": 0, "image_size": (8, 8)}, "num_classes must be an int >= 1"),
        ({"in_channels": 1, "num_classes": 2, "image_size": (8,)}, "image_size must be two ints"),
    ],
)
def test_invalid_dimensions_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("convnet", **kwargs)


def test_unknown_config_field_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel"):
        create_model("resnet18", in_channels=3, num_classes=2, image_size=(32, 32), kernel=3)
    with pytest.raises(ValueError, match="dropout must be in"):
        create_model("convnet", in_channels=3, num_classes=2, image_size=(32, 32), dropout=1.2)


def test_register_model_refuses_a_second_factory() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("convnet")(lambda **_: nn.Identity())


def test_model_from_config() -> None:
    convnet = model_from_config(ConvNetConfig(**SMALL), in_channels=1, num_classes=3, image_size=(8, 8))
    assert isinstance(convnet, ConvNet) and convnet.config.channels == [4, 8]
    config = BackboneConfig(name="resnet18", input_size=40, head_dropout=0.2, freeze="backbone")
    resnet = model_from_config(config, in_channels=1, num_classes=3, image_size=(8, 8))
    assert isinstance(resnet, BackboneClassifier)
    assert resnet.adapter.size == (40, 40) and resnet.head.dropout.p == 0.2
    assert not any(p.requires_grad for p in resnet.backbone.parameters())
    assert resnet.normalization is None


def test_family_and_model_config_follow_the_name() -> None:
    assert family("convnet") == "convnet" and family("resnet18") == "backbone"
    assert {"convnet": ConvNetConfig, "backbone": BackboneConfig} == FAMILIES
    assert isinstance(RunConfig().model, ConvNetConfig)  # no name: the convnet
    backbone = RunConfig.model_validate({"model": {"name": "vgg16", "pretrained": True}}).model
    assert isinstance(backbone, BackboneConfig) and backbone.pretrained
    with pytest.raises(ValueError, match="channels"):  # a backbone has no channels
        RunConfig.model_validate({"model": {"name": "resnet18", "channels": [4]}})


def test_only_the_convnet_is_tabulated_by_arithmetic() -> None:
    convnet, backbone = ConvNetConfig(**SMALL), BackboneConfig(name="resnet18")
    assert has_arithmetic_table(convnet) and not has_arithmetic_table(backbone)
    assert layer_table(convnet, 1, (8, 8), 3) == architecture_table(convnet, 1, (8, 8), 3)
    network = model_from_config(backbone, in_channels=3, num_classes=4, image_size=(32, 32))
    rows = layer_table(backbone, 3, (32, 32), 4, network=network)
    assert rows == traced_table(network, 3, (32, 32)) and rows[-1].out_shape == (4,)
    assert layer_table(backbone, 3, (32, 32), 4) == rows  # built from the config when not given


def test_model_from_config_refuses_other_configs() -> None:
    with pytest.raises(TypeError, match="config must be a ConvNetConfig or BackboneConfig"):
        model_from_config(RunConfig(), in_channels=1, num_classes=2, image_size=(8, 8))  # type: ignore[arg-type]


def test_the_registry_and_the_convnet_tables_import_no_torch() -> None:
    code = (
        "import lightning_modules.models.registry as r, lightning_modules.config;"
        "from lightning_modules.models.config import ConvNetConfig;"
        "r.layer_table(ConvNetConfig(), 1, (8, 8), 2)"
    )
    assert "torch" not in imported_packages(code)
