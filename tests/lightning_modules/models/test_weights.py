"""`load_weights`, the one loader: files, checkpoints, state dicts, URIs through a resolver; a head
of another class count kept fresh, every other mismatch named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.registry import create_model
from lightning_modules.models.weights import URI_SCHEMES, adapt_input_conv, is_uri, load_weights

SMALL = {"channels": [4, 8]}


def _state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> bool:
    return all(torch.equal(a[key], b[key]) for key in keys)


def _convnet(**overrides: object) -> ConvNet:
    fields = {**SMALL, **overrides}
    num_classes = fields.pop("num_classes", 3)
    return create_model("convnet", in_channels=1, num_classes=num_classes, image_size=(8, 8), **fields)


def test_adapt_input_conv() -> None:
    weight = torch.randn(8, 3, 3, 3)
    assert torch.allclose(adapt_input_conv(weight, 1), weight.sum(1, keepdim=True))
    assert adapt_input_conv(weight, 5).shape == (8, 5, 3, 3)
    tiled = adapt_input_conv(weight, 6)
    assert torch.allclose(tiled, torch.cat([weight, weight], 1) / 2)
    assert torch.allclose(tiled.sum(1), weight.sum(1), atol=1e-5)  # constant images respond the same


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/digits@champion", True),
        ("runs:/abc/model", True),
        ("mlflow-artifacts:/1/model", True),
        ("s3://bucket/weights.pt", True),
        ("file:///tmp/weights.pt", True),
        ("ftp://host/weights.pt", True),
        ("weights.pt", False),
        ("/tmp/weights.pt", False),
        ("C:/weights.pt", False),
        ("nowhere/pretrained.pt", False),
    ],
)
def test_is_uri_tells_uris_from_paths(text: str, expected: bool) -> None:
    assert is_uri(text) is expected


def test_uris_convtune_cannot_read_are_refused_before_the_resolver() -> None:
    asked: list[str] = []

    def resolver(uri: str) -> dict[str, torch.Tensor]:
        asked.append(uri)
        return {}

    with pytest.raises(ValueError, match=r"'ftp://host/w\.pt' is not a URI convtune can read") as error:
        load_weights(_convnet(), "ftp://host/w.pt", resolver=resolver)
    assert "\n" not in str(error.value) and asked == []
    assert all(is_uri(scheme + "x") for scheme in URI_SCHEMES)
