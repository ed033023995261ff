"""Where runs, registered models and artifacts go, by MLflow's own conventions.

- Runs: `MLFLOW_TRACKING_URI` when set, else `mlflow.yml`'s `tracking_uri`, else a SQLite store in
  `.convtune/` of the working folder.
- Models: `MLFLOW_REGISTRY_URI` when set; else `mlflow.yml`'s `registry_uri`, but only together with
  its `tracking_uri` (an environment that points runs elsewhere takes the registry along); else the
  tracking store.
- Artifacts: for an HTTP tracking server, wherever the server says (its `--default-artifact-root`, or
  proxied `mlflow-artifacts:` URIs with `--serve-artifacts`), so that every machine writes to the
  same place; for a store on this machine (SQLite, a folder), `mlflow.yml`'s `artifact_location`.

Importing this module costs nothing: it imports neither MLflow nor torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from search.errors import ConfigError
from search.experiment.yaml_loading import load_yaml

DEFAULT_TRACKING_URI = "sqlite:///.convtune/mlflow.db"
DEFAULT_ARTIFACTS = ".convtune/mlartifacts"
CONFIG_ENV = "CONVTUNE_MLFLOW_CONFIG"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_ENV = "MLFLOW_REGISTRY_URI"
SETTINGS_KEYS = ("tracking_uri", "registry_uri", "artifact_location")
_SERVER_SCHEMES = ("http://", "https://", "databricks")
_LOCAL_SCHEMES = ("sqlite:", "file:")
DEFAULT_SOURCE = "the default"


@dataclass(frozen=True)
class TrackingSettings:
    """Resolved URIs; `artifact_location` is None where the tracking server decides."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None = None
    source: str = "explicit"  # where the tracking URI came from: environment / mlflow.yml / default

    def where_to_fix(self) -> str:
        """Where the tracking URI came from, as the place to change it."""
        if self.source.startswith("$"):
            return f"fix {self.source}"
        if self.source == DEFAULT_SOURCE:
            return "point MLFLOW_TRACKING_URI or tracking_uri in mlflow.yml at a running store"
        return f"fix tracking_uri in {self.source} (or set MLFLOW_TRACKING_URI, which wins)"

    @property
    def is_server(self) -> bool:
        return self.tracking_uri.startswith(_SERVER_SCHEMES)

    @property
    def is_local(self) -> bool:
        return is_local_store(self.tracking_uri)

    def destinations(self) -> list[str]:
        """One line each for runs, models and artifacts, credentials hidden (for `convtune check`)."""
        runs = f"runs      -> {redact(self.tracking_uri)} (from {self.source})"
        models = f"models    -> {redact(self.registry_uri)}"
        if self.is_server:
            artifacts = (
                "artifacts -> the tracking server's artifact store (its --default-artifact-root, "
                "or mlflow-artifacts: with --serve-artifacts)"
            )
        elif self.is_local:
            artifacts = f"artifacts -> {redact(self.artifact_location or '')}"
        else:
            artifacts = (
                f"artifacts -> {redact(self.artifact_location or '')} on each machine that runs a trial; "
                "to share pictures and models, run an `mlflow server --serve-artifacts` and set "
                f"{TRACKING_ENV}=http://HOST:PORT"
            )
        return [runs, models, artifacts]


def is_local_store(uri: str) -> bool:
    """A store that lives on this machine: SQLite or a folder (`file:` or a plain path)."""
    return uri.startswith(_LOCAL_SCHEMES) or "://" not in uri


def redact(uri: str) -> str:
    """`scheme://user:secret@host/...` -> `scheme://user:***@host/...`."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _absolute(uri: str, base: Path) -> str:
    """`sqlite:///relative.db` and plain paths are taken relative to `base`."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base / uri.removeprefix("sqlite:///")).resolve())
    if "://" not in uri and not uri.startswith("file:"):
        return (base / uri).resolve().as_uri()
    return uri


def find_settings_file(explicit: str | Path | None = None) -> Path | None:
    candidate = explicit or os.environ.get(CONFIG_ENV)
    if candidate:
        path = Path(candidate)
        if not path.is_file():
            raise ConfigError(f"MLflow settings file {path} not found; create it or unset {CONFIG_ENV}.")
        return path
    local = Path("mlflow.yml")
    return local if local.is_file() else None


def _read_settings_file(path: Path) -> dict[str, Any]:
    try:
        raw = load_yaml(path.read_text(), str(path)) or {}
    except OSError as error:
        raise ConfigError(
            f"{path} cannot be read ({error.strerror or error}); fix it or remove it."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of {', '.join(SETTINGS_KEYS)}.")
    unknown = sorted(set(raw) - set(SETTINGS_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; allowed keys: {', '.join(SETTINGS_KEYS)}.")
    return {key: str(value) for key, value in raw.items() if value}


def load_settings(explicit: str | Path | None = None) -> TrackingSettings:
    """The tracking, registry and artifact locations for this working folder (module docstring)."""
    path = find_settings_file(explicit)
    file_values = _read_settings_file(path) if path is not None else {}
    base = path.resolve().parent if path is not None else Path.cwd()
    from_env = os.environ.get(TRACKING_ENV, "").strip()
    if from_env:
        tracking, source = _absolute(from_env, Path.cwd()), f"${TRACKING_ENV}"
    elif "tracking_uri" in file_values:
        tracking, source = _absolute(file_values["tracking_uri"], base), str(path)
    else:
        tracking, source = _absolute(DEFAULT_TRACKING_URI, base), DEFAULT_SOURCE
    registry_env = os.environ.get(REGISTRY_ENV, "").strip()
    if registry_env:
        registry = _absolute(registry_env, Path.cwd())
    elif "registry_uri" in file_values and not from_env:
        registry = _absolute(file_values["registry_uri"], base)
    else:
        registry = tracking
    artifacts = None
    if not tracking.startswith(_SERVER_SCHEMES):
        artifacts = _absolute(file_values.get("artifact_location", DEFAULT_ARTIFACTS), base)
    return TrackingSettings(tracking, registry, artifacts, source)
