"""`search.tracking.registry`: a model logged to its run, registered under an alias, downloaded back."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch

from search.errors import ConvtuneError
from search.tracking.model_store import MODEL_FILE, load_inference_model
from search.tracking.registry import CHAMPION_ALIAS, download_model, log_and_register, log_model
from search.tracking.settings import load_settings
from search.tracking.tracker import Tracker
from tests.helpers.parallel_helpers import mlflow_client
from tests.helpers.tiny_runs import untrained_model


def test_a_logged_model_is_registered_under_its_alias_and_loads_back(workdir: Path) -> None:
    tracker = Tracker(load_settings())
    run_id = tracker.start_reproduction(study_name="reg", trial_number=0, original_run_id=None, tags={})
    model = untrained_model([])
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    registered = log_and_register(model, tracker, run_id, "reg", example=images[:2], tags={"test_acc": "0.5"})
    tracker.end_run(run_id)
    assert (registered.name, registered.version, registered.alias) == ("reg", "1", CHAMPION_ALIAS)
    assert registered.alias_uri == "models:/reg@champion"
    version = mlflow_client().get_model_version_by_alias("reg", CHAMPION_ALIAS)
    assert str(version.version) == "1" and version.tags["test_acc"] == "0.5"
    folder = download_model(f"runs:/{run_id}")  # the run's model folder, `model` appended
    assert (folder / "MLmodel").is_file() and (folder / "extra_files" / MODEL_FILE).is_file()
    loaded = load_inference_model(registered.alias_uri)
    assert torch.equal(loaded.predict(images), model.predict(images))


def test_an_unknown_model_is_one_clear_error(workdir: Path) -> None:
    with pytest.raises(ConvtuneError, match=r"cannot load model models:/nothing@champion \(") as error:
        download_model("models:/nothing@champion")
    assert "\n" not in str(error.value) and "mlflow.yml" in str(error.value)


def test_a_model_logging_cut_off_after_linking_its_run_is_retried_as_a_new_model(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage can end an attempt after MLflow linked the model to the run, which it refuses to do
    twice for one model: the retry logs a new model and deletes the unfinished one."""
    import mlflow.pytorch

    real = mlflow.pytorch.log_model
    model_ids: list[str] = []

    def cut_off_once(*args: object, **kwargs: object) -> object:
        model_ids.append(str(kwargs["model_id"]))
        info = real(*args, **kwargs)
        if len(model_ids) == 1:
            raise ConnectionError("Failed to establish a new connection: Connection refused")
        return info

    monkeypatch.setattr(mlflow.pytorch, "log_model", cut_off_once)
    tracker = Tracker(load_settings())
    run_id = tracker.start_reproduction(study_name="cut", trial_number=0, original_run_id=None, tags={})
    model = untrained_model([])
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    info = log_model(model, tracker, run_id, example=images[:2])
    tracker.end_run(run_id)
    assert len(model_ids) == 2 and model_ids[0] != model_ids[1] and info.model_id == model_ids[1]
    with pytest.raises(Exception, match=r"not found|RESOURCE_DOES_NOT_EXIST|deleted"):
        mlflow_client().get_logged_model(model_ids[0])
    assert torch.equal(load_inference_model(info.model_uri).predict(images), model.predict(images))


def test_a_registration_cut_off_after_the_server_created_the_version_leaves_one_version(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage can end the registration after the server created the version: the retry finds
    that version instead of registering the model a second time."""
    real = mlflow.register_model
    calls: list[str] = []

    def cut_off_once(model_uri: str, name: str, *args: object, **kwargs: object) -> object:
        calls.append(model_uri)
        version = real(model_uri, name, *args, **kwargs)
        if len(calls) == 1:
            raise ConnectionError("Failed to establish a new connection: Connection refused")
        return version

    monkeypatch.setattr(mlflow, "register_model", cut_off_once)
    tracker = Tracker(load_settings())
    run_id = tracker.start_reproduction(study_name="cut", trial_number=0, original_run_id=None, tags={})
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    registered = log_and_register(untrained_model([]), tracker, run_id, "cut", example=images[:2])
    tracker.end_run(run_id)
    versions = mlflow_client().search_model_versions("name = 'cut'")
    assert len(calls) == 1 and [str(found.version) for found in versions] == ["1"]
    assert registered.version == "1" and registered.model_uri == calls[0]
    assert str(mlflow_client().get_model_version_by_alias("cut", CHAMPION_ALIAS).version) == "1"
