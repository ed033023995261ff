"""`model.weights` from MLflow URIs, checked before any trial, and fine-tuning keys in the space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from lightning_modules.models.registry import create_model
from lightning_modules.training import build_run
from search.cli.main import main
from search.errors import ConfigError, ConvtuneError
from search.experiment.spec import validate_experiment
from search.study.preflight import preflight
from search.study.runner import TuneOptions, tune
from search.study.weights import resolve_weights
from search.tracking import Tracker, load_settings
from search.tracking.model_store import InferenceModel, inference_model_from_run
from search.tracking.registry import log_and_register
from tests.conftest import tiny_experiment, write_experiment

CHANNELS = [8, 16]


def _convnet(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(3)
    return create_model(
        "convnet", in_channels=1, num_classes=num_classes, image_size=(8, 8), channels=CHANNELS
    ).eval()


def _inference_model(network: nn.Module) -> InferenceModel:
    return inference_model_from_run(
        network,
        model_config={"name": "convnet", "channels": CHANNELS},
        data_config={"dataset": "digits"},
        in_channels=1,
        image_size=(8, 8),
        class_names=["a", "b", "c", "d"],
        mean=[0.5],
        std=[0.25],
    )


def _experiment(**model: Any) -> dict[str, Any]:
    raw = tiny_experiment()
    raw["model"].update(model)
    return raw


def _check(folder: Path, raw: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", str(write_experiment(folder, raw))])
    return code, capsys.readouterr().err


def test_weights_from_a_registered_model_and_a_logged_state_dict(workdir: Path) -> None:
    source = _convnet(num_classes=4)
    tracker = Tracker(load_settings())
    run_id = tracker.start_reproduction(study_name="pretrain", trial_number=0, original_run_id=None, tags={})
    model = _inference_model(source)
    log_and_register(model, tracker, run_id, "pretrain", example=torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    state = source.state_dict()
    resolved = resolve_weights("models:/pretrain@champion")
    assert resolved.keys() == state.keys() and all(torch.equal(resolved[k], v) for k, v in state.items())
    assert resolve_weights("models:/pretrain@champion") is resolved  # cached for the next trials

    # digits has 10 classes, the registered model 4: the head is new, the blocks are the model's
    config = validate_experiment(_experiment(weights="models:/pretrain@champion")).run_config()
    parts = build_run(config, weights_resolver=resolve_weights)
    network = parts.module.model
    assert network.head.fc.weight.shape[0] == 10
    blocks = {k: v for k, v in state.items() if k.startswith("blocks.")}
    assert all(torch.equal(network.state_dict()[k], v) for k, v in blocks.items())

    file = workdir / "state.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, file)
    weights = workdir / "weights"
    weights.mkdir()
    file.rename(weights / "state.pt")
    tracker.log_artifacts(run_id, weights, "weights")
    resolved = resolve_weights(f"runs:/{run_id}/weights/state.pt")
    assert torch.equal(resolved["state_dict"]["model.blocks.0.conv0.weight"], state["blocks.0.conv0.weight"])

    raw = _experiment(weights="models:/pretrain@champion", freeze="backbone")
    raw["search"]["n_trials"] = 1
    study = tune(validate_experiment(raw), TuneOptions(progress=False))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]

    with pytest.raises(ConvtuneError, match="cannot load model models:/pretrain@nope") as error:
        resolve_weights("models:/pretrain@nope")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=r"^model: cannot load model models:/missing@champion"):
        preflight(validate_experiment(_experiment(weights="models:/missing@champion")))


def test_missing_corrupt_or_unknown_weights_are_one_line_before_any_trial(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _check(workdir, _experiment(weights="nowhere/pretrained.pt"), capsys)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "weights file nowhere/pretrained.pt does not exist" in err

    (workdir / "corrupt.pt").write_bytes(b"\x80\x02 not a torch file at all" * 4)
    code, err = _check(workdir, _experiment(weights="corrupt.pt"), capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "weights file corrupt.pt could not be loaded" in err

    code, err = _check(workdir, _experiment(weights="ftp://host/pretrained.pt"), capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "is not a URI convtune can read" in err

    torch.save(_convnet().state_dict(), workdir / "wide.pt")
    code, err = _check(workdir, _experiment(weights="wide.pt", channels=[8, 32]), capsys)
    assert code == 2 and "shape mismatch at blocks.1.conv0.weight" in err
    assert not (workdir / "mlflow.db").exists()  # nothing was written


def test_fine_tuning_controls_are_search_space_keys(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(_convnet().state_dict(), workdir / "pretrained.pt")
    raw = _experiment(weights="pretrained.pt")
    raw["search"]["space"] = {
        "model.freeze": {"choice": ["backbone", "none", "until:1"]},
        "model.unfreeze_after": {"choice": [None, 1], "when": {"model.freeze": ["backbone", "until:1"]}},
        "optim.backbone_lr_scale": {"float": [0.01, 1.0], "log": True},
    }
    code, err = _check(workdir, raw, capsys)
    assert code == 0, err
    raw["search"]["space"]["model.freeze"]["choice"].append("until:layer3")
    code, err = _check(workdir, raw, capsys)
    assert code == 2 and "freeze=until:layer3 names no layer of the ConvNet backbone" in err
    raw["search"]["space"]["model.freeze"]["choice"] = ["all"]
    with pytest.raises(ConfigError, match=r"search.space\['model.freeze'\] can take 'all'"):
        validate_experiment(raw)


def test_a_convtune_model_outside_mlflow_gives_its_network_and_other_schemes_are_refused(
    tmp_path: Path,
) -> None:
    network = _convnet()
    model = _inference_model(network)
    path = model.save(tmp_path / "model.pt")
    for source in (str(path), f"file://{path}"):  # how reproduce read `model.weights` before
        resolved = resolve_weights(source)
        assert all(torch.equal(resolved[k], v) for k, v in network.state_dict().items())
    with pytest.raises(ValueError, match="is not a URI convtune can read"):
        resolve_weights("ftp://host/pretrained.pt")
