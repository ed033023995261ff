from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from lightning_modules.config import BackboneConfig, ConvNetConfig
from lightning_modules.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneClassifier,
    ConvNet,
    adapt_input_conv,
    backbones,
    create_model,
    list_models,
    load_weights,
    model_from_config,
    register_model,
)

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


def _state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> bool:
    return all(torch.equal(a[key], b[key]) for key in keys)


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


def test_convnet_structure() -> None:
    config = ConvNetConfig(channels=[4, 8], batch_norm=True, dropout=0.1, hidden=[16], global_pool=True)
    model = ConvNet(config, in_channels=1, num_classes=3, image_size=(8, 8))
    assert len(model.blocks) == 2 and model.backbone is model.blocks
    assert list(model.blocks[0]._modules) == ["conv0", "bn0", "act0", "pool", "drop"]
    assert model.blocks[0].conv0.bias is None
    assert list(model.head._modules) == ["pool", "flatten", "hidden0", "act0", "fc"]
    no_bn = ConvNet(
        ConvNetConfig(channels=[4], batch_norm=False), in_channels=1, num_classes=3, image_size=(8, 8)
    )
    assert no_bn.blocks[0].conv0.bias is not None


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


def test_adapt_input_conv() -> None:
    weight = torch.randn(8, 3, 3, 3)
    assert torch.allclose(adapt_input_conv(weight, 1), weight.sum(1, keepdim=True))
    assert adapt_input_conv(weight, 5).shape == (8, 5, 3, 3)
    tiled = adapt_input_conv(weight, 6)
    assert torch.allclose(tiled, torch.cat([weight, weight], 1) / 2)
    assert torch.allclose(tiled.sum(1), weight.sum(1), atol=1e-5)  # constant images respond the same


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


# ----------------------------------------------------------------------------- weights


def _convnet(**overrides: object) -> ConvNet:
    fields = {**SMALL, **overrides}
    num_classes = fields.pop("num_classes", 3)
    return create_model("convnet", in_channels=1, num_classes=num_classes, image_size=(8, 8), **fields)


def test_weights_from_a_local_file(tmp_path: Path) -> None:
    source = create_model("resnet18", in_channels=1, num_classes=5, image_size=(8, 8))
    path = tmp_path / "resnet.pt"
    torch.save(source.state_dict(), path)
    model = create_model("resnet18", in_channels=1, num_classes=5, image_size=(8, 8), weights=str(path))
    expected, got = source.state_dict(), model.state_dict()
    assert _state_equal(expected, got, list(expected))


def test_mismatched_head_is_replaced_and_the_rest_loaded(tmp_path: Path) -> None:
    source = _convnet(hidden=[6], num_classes=3)
    path = tmp_path / "convnet.pt"
    torch.save(source.state_dict(), path)
    model = _convnet(hidden=[6], num_classes=7)
    fresh = model.head.fc.weight.detach().clone()
    kept = load_weights(model, path)
    assert kept == ["head.fc.bias", "head.fc.weight"]
    assert torch.equal(model.head.fc.weight, fresh)
    body = [key for key in source.state_dict() if not key.startswith("head.fc.")]
    assert _state_equal(source.state_dict(), model.state_dict(), body)


def test_mismatched_body_layer_is_named(tmp_path: Path) -> None:
    path = tmp_path / "convnet.pt"
    torch.save(_convnet().state_dict(), path)
    with pytest.raises(ValueError, match=r"shape mismatch at blocks\.1\.conv0\.weight \(file \(8, 4, 3, 3\)"):
        load_weights(_convnet(channels=[4, 16]), path)
    with pytest.raises(ValueError, match=r"missing in file: blocks\.2\.conv0\.weight"):
        load_weights(_convnet(channels=[4, 8, 8]), path)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(ValueError, match=f"weights file {missing} does not exist") as error:
        load_weights(_convnet(), missing)
    assert "\n" not in str(error.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match=f"weights file {corrupt} could not be loaded"):
        load_weights(_convnet(), corrupt)
    with pytest.raises(ValueError, match="does not exist"):
        create_model("resnet18", in_channels=1, num_classes=2, image_size=(8, 8), weights=str(missing))


def test_lightning_checkpoint_and_state_dict_sources(tmp_path: Path) -> None:
    source = _convnet()
    checkpoint = {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    model = _convnet()
    assert load_weights(model, path) == []
    assert _state_equal(source.state_dict(), model.state_dict(), list(source.state_dict()))
    other = _convnet()
    load_weights(other, source.state_dict())
    assert torch.equal(other.blocks[0].conv0.weight, source.blocks[0].conv0.weight)


def test_plain_torchvision_state_dict_loads_into_the_backbone(tmp_path: Path) -> None:
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet18", in_channels=1, num_classes=4, image_size=(8, 8), channel_adapt="conv")
    assert load_weights(model, path) == ["head.fc.bias", "head.fc.weight"]
    assert torch.allclose(model.backbone.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)


def test_weights_uri_needs_a_resolver() -> None:
    source = _convnet()
    with pytest.raises(ValueError, match="is a URI; resolve it to a state dict first"):
        load_weights(_convnet(), "models:/digits@champion")
    model = _convnet()
    load_weights(model, "runs:/abc/model", resolver=lambda uri: source.state_dict())
    assert torch.equal(model.head.fc.weight, source.head.fc.weight)


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
