"""Torchvision backbones adapted to the data: channels, input size, pretrained weights, inception."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from lightning_modules.models import backbones
from lightning_modules.models.backbones import IMAGENET_MEAN, IMAGENET_STD, BackboneClassifier
from lightning_modules.models.registry import create_model


@pytest.mark.parametrize("in_channels", [1, 4])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "inception_v3"])
def test_channel_adapt_conv_rewrites_the_first_conv(name: str, in_channels: int) -> None:
    model = create_model(
        name, in_channels=in_channels, num_classes=4, image_size=(28, 28), channel_adapt="conv"
    )
    first = next(m for m in model.backbone.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == in_channels and not model.adapter.repeat
    model.eval()
    assert model(torch.randn(1, in_channels, 28, 28)).shape == (1, 4)


def test_channel_adapt_repeat_needs_one_channel() -> None:
    with pytest.raises(
        ValueError, match=r"channel_adapt: repeat turns 1 channel into 3.*use channel_adapt: conv"
    ):
        create_model("resnet18", in_channels=4, num_classes=2, image_size=(32, 32))


def test_input_size_rules() -> None:
    small = create_model("resnet18", in_channels=1, num_classes=2, image_size=(8, 16))
    assert small.adapter.size == (32, 64)  # scaled up to 32 on the short side, aspect kept
    large = create_model("resnet18", in_channels=3, num_classes=2, image_size=(64, 64))
    assert large.adapter.size is None
    fixed = create_model("resnet18", in_channels=3, num_classes=2, image_size=(64, 64), input_size=48)
    assert fixed.adapter.size == (48, 48)
    features = fixed.features(torch.zeros(2, 3, 64, 64))
    assert features.shape == (2, 512)


def test_pretrained_uses_torchvision_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    source = torchvision.models.resnet18().state_dict()
    calls = []

    def fake(name: str) -> dict[str, torch.Tensor]:
        calls.append(name)
        return source

    monkeypatch.setattr(backbones, "pretrained_state_dict", fake)
    model = create_model(
        "resnet18", in_channels=1, num_classes=3, image_size=(8, 8), pretrained=True, channel_adapt="conv"
    )
    assert calls == ["resnet18"]
    assert model.normalization == (pytest.approx((0.449,)), pytest.approx((0.226,)))  # averaged RGB stats
    assert torch.allclose(model.backbone.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(model.backbone.layer1[0].conv1.weight, source["layer1.0.conv1.weight"])


def test_offline_pretrained_error_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(type(weights), "get_state_dict", offline)
    with pytest.raises(ValueError, match=r"could not get the pretrained weights.*weights: PATH"):
        backbones.pretrained_state_dict("resnet18")


def test_pretrained_rgb_normalization_and_inception(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = {
        "resnet18": torchvision.models.resnet18().state_dict(),
        "inception_v3": torchvision.models.inception_v3(aux_logits=True, init_weights=False).state_dict(),
    }
    monkeypatch.setattr(backbones, "pretrained_state_dict", sources.__getitem__)
    rgb = create_model("resnet18", in_channels=3, num_classes=2, image_size=(32, 32), pretrained=True)
    assert rgb.normalization == (IMAGENET_MEAN, IMAGENET_STD)
    inception = create_model(
        "inception_v3",
        in_channels=1,
        num_classes=2,
        image_size=(28, 28),
        pretrained=True,
        channel_adapt="conv",
    )
    assert inception.backbone.AuxLogits is None and not inception.backbone.transform_input
    assert inception.normalization == ((0.5,), (0.5,))
    inception.train()
    assert inception(torch.randn(2, 1, 28, 28)).shape == (2, 2)


def test_plain_torchvision_keys_are_renamed_to_the_adapted_model() -> None:
    model = create_model("inception_v3", in_channels=3, num_classes=2, image_size=(75, 75))
    assert isinstance(model, BackboneClassifier)
    renamed = model.from_torchvision(
        {"conv.weight": torch.zeros(1), "fc.bias": torch.zeros(2), "AuxLogits.fc.bias": torch.zeros(2)}
    )
    assert sorted(renamed) == ["backbone.conv.weight", "head.fc.bias"]  # AuxLogits dropped
    own = {"backbone.conv.weight": torch.zeros(1)}
    assert model.from_torchvision(own) is own
