"""`search.tracking.model_store` without training: save/load, inputs, rebuilding without downloads,
and every unreadable model as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_modules.config import OptimConfig
from lightning_modules.models.config import BackboneConfig, ConvNetConfig
from lightning_modules.models.registry import model_from_config
from lightning_modules.module import ClassifierModule
from search.cli.main import main
from search.errors import ConvtuneError
from search.study.weights import resolve_weights
from search.tracking.model_store import (
    InferenceModel,
    ModelDescription,
    inference_model_from_run,
    load_inference_model,
)


def _model(config: ConvNetConfig | BackboneConfig, channels: int = 1, size: int = 8) -> InferenceModel:
    torch.manual_seed(0)
    network = model_from_config(config, in_channels=channels, num_classes=4, image_size=size)
    return inference_model_from_run(
        network.eval(),
        model_config=config.model_dump(mode="json"),
        data_config={"dataset": "digits"},
        in_channels=channels,
        image_size=(size, size),
        class_names=["a", "b", "c", "d"],
        mean=[0.3] * channels,
        std=[0.2] * channels,
    )


def test_uint8_and_float_images_give_the_same_probabilities() -> None:
    model = _model(ConvNetConfig(channels=[4, 8]))
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    probabilities = model.predict(images)
    assert probabilities.shape == (3, 4)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(3))
    assert torch.allclose(model.predict(images.float() / 255), probabilities, atol=1e-5)


def test_normalization_matches_the_training_module() -> None:
    model = _model(ConvNetConfig(channels=[4]))
    module = ClassifierModule(
        model.network, OptimConfig(), num_classes=4, mean=[0.3], std=[0.2], channels_last=False
    )
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(model.normalize(images), module.prepare(images))


def test_wrong_input_shape_names_the_expected_one() -> None:
    model = _model(ConvNetConfig(channels=[4]))
    with pytest.raises(ValueError, match=r"takes images of shape \(N, 1, 8, 8\)"):
        model.predict(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_description_round_trips_through_json() -> None:
    description = _model(ConvNetConfig(channels=[4])).description
    assert ModelDescription.from_json(description.to_json()) == description


def test_saved_file_holds_only_tensors_and_plain_values(tmp_path: Path) -> None:
    model = _model(ConvNetConfig(channels=[4, 8], batch_norm=True))
    path = model.save(tmp_path / "m.pt")
    bundle = torch.load(path, weights_only=True)
    assert bundle["format"] == "convtune-model" and isinstance(bundle["description"], str)
    loaded = load_inference_model(str(path))
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(loaded.predict(images), model.predict(images))
    assert resolve_weights(str(path)).keys() == model.network.state_dict().keys()


def test_a_pretrained_backbone_is_rebuilt_without_downloading(tmp_path: Path) -> None:
    config = BackboneConfig(name="resnet18", pretrained=False, freeze="backbone")
    model = _model(config, channels=3, size=32)
    path = model.save(tmp_path / "m.pt")
    # the description says pretrained: a rebuild must not fetch weights (this machine is offline)
    bundle = torch.load(path, weights_only=True)
    description = ModelDescription.from_json(bundle["description"])
    description.model["pretrained"] = True
    bundle["description"] = description.to_json()
    torch.save(bundle, path)
    loaded = load_inference_model(str(path))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(loaded.predict(images), model.predict(images), atol=1e-6)


def test_a_state_dict_of_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    model = _model(ConvNetConfig(channels=[4, 8]))
    path = model.save(tmp_path / "m.pt")
    bundle = torch.load(path, weights_only=True)
    bundle["description"] = bundle["description"].replace("[4, 8]", "[4, 16]")
    torch.save(bundle, path)
    with pytest.raises(ConvtuneError, match="holds a damaged convtune model"):
        load_inference_model(str(path))


def test_an_mlflow_folder_without_convtune_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(
        ConvtuneError, match=r"MLflow model without convtune's extra_files/convtune_model\.pt"
    ):
        load_inference_model(str(tmp_path))


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (lambda p: p.write_bytes(b"\x00not a torch file\xff" * 10), "is not a readable model file"),
        (lambda p: torch.save({"weights": torch.zeros(3)}, p), "not a convtune model"),
        (lambda p: p.write_bytes(b""), "is not a readable model file"),
        (lambda p: None, "not found"),
    ],
)
def test_corrupt_or_missing_model_is_one_line_and_exit_status_1(
    workdir: Path, capsys: pytest.CaptureFixture[str], write, expected: str
) -> None:
    path = workdir / "model.pt"
    write(path)
    image = workdir / "x.png"
    Image.new("L", (8, 8)).save(image)
    assert main(["predict", str(path), str(image)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err, err
