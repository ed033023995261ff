"""`traced_table` of any network through forward hooks, and `count_parameters`."""

from __future__ import annotations

from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.registry import create_model
from lightning_modules.models.tracing import count_parameters, traced_table


def test_traced_table_of_a_backbone() -> None:
    model = create_model("resnet18", in_channels=3, num_classes=10, image_size=(224, 224))
    rows = traced_table(model, 3, (224, 224))
    conv1 = next(row for row in rows if row.name == "backbone.conv1")
    assert (conv1.kind, conv1.kernel, conv1.stride, conv1.padding, conv1.out_shape) == (
        "conv",
        7,
        2,
        3,
        (64, 112, 112),
    )
    fields = {row.name: row.receptive_field for row in rows}
    assert fields["backbone.layer4.1.conv2"] == 435  # the published receptive field of ResNet-18
    assert rows[-1].name == "head.fc" and rows[-1].out_shape == (10,)
    assert sum(row.params for row in rows) == count_parameters(model)
    assert model.training  # modes restored


def test_traced_table_of_a_resized_backbone() -> None:
    model = create_model("mobilenet_v3_small", in_channels=1, num_classes=2, image_size=(8, 8))
    rows = traced_table(model, 1, (8, 8))
    assert rows[0].name == "adapter" and rows[0].out_shape == (3, 32, 32)
    assert rows[-1].out_shape == (2,)


def test_count_parameters_trainable_only() -> None:
    model = ConvNet(ConvNetConfig(channels=[4]), in_channels=1, num_classes=2, image_size=(8, 8))
    total = count_parameters(model)
    model.head.fc.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - model.head.fc.weight.numel()
