"""`search.tracking.settings`: where runs, models and artifacts go, and what `check` says about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.main import main
from search.tracking.settings import load_settings, redact
from tests.conftest import tiny_experiment, write_experiment

SERVER = "http://mlflow.example:5000"


def _settings_file(folder: Path, text: str) -> None:
    (folder / "mlflow.yml").write_text(text)


def test_mlflow_tracking_uri_wins_and_takes_the_registry_along(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_file(workdir, "tracking_uri: sqlite:///local.db\nregistry_uri: sqlite:///registry.db\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)
    settings = load_settings()
    assert settings.tracking_uri == SERVER and settings.registry_uri == SERVER
    assert settings.artifact_location is None, "a server decides where artifacts go"
    assert settings.is_server and settings.source == "$MLFLOW_TRACKING_URI"


def test_mlflow_registry_uri_wins_over_everything(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://registry.example")
    assert load_settings().registry_uri == "http://registry.example"


def test_without_the_environment_mlflow_yml_names_all_three(workdir: Path) -> None:
    _settings_file(
        workdir,
        "tracking_uri: sqlite:///runs.db\nregistry_uri: sqlite:///models.db\nartifact_location: art\n",
    )
    settings = load_settings()
    assert settings.tracking_uri == f"sqlite:///{workdir.resolve() / 'runs.db'}"
    assert settings.registry_uri == f"sqlite:///{workdir.resolve() / 'models.db'}"
    assert settings.artifact_location == (workdir / "art").resolve().as_uri()


def test_the_registry_follows_the_tracking_store_unless_named(workdir: Path) -> None:
    _settings_file(workdir, "tracking_uri: sqlite:///runs.db\n")
    settings = load_settings()
    assert settings.registry_uri == settings.tracking_uri


def test_check_prints_where_runs_models_and_artifacts_go(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"runs      -> sqlite:///{workdir.resolve() / 'mlflow.db'}" in out
    assert f"artifacts -> {(workdir / 'mlartifacts').resolve().as_uri()}" in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:secret@mlflow.example:5000")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "runs      -> http://alice:***@mlflow.example:5000 (from $MLFLOW_TRACKING_URI)" in out
    assert "models    -> http://alice:***@mlflow.example:5000" in out and "secret" not in out
    assert "artifacts -> the tracking server's artifact store" in out


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://bob:pw@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert redact("http://host:5000") == "http://host:5000"
