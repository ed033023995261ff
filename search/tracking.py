"""MLflow tracking: the only module that imports mlflow.

One experiment per study, one parent run per study, one child run per trial (DESIGN.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
import pytorch_lightning as pl
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from search.errors import ConfigError, ConvtuneError

DEFAULT_TRACKING_URI = "sqlite:///.convtune/mlflow.db"
DEFAULT_ARTIFACTS = ".convtune/mlartifacts"
CONFIG_ENV = "CONVTUNE_MLFLOW_CONFIG"
EPOCH_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "throughput/img_s")

STATE_TO_STATUS = {
    "COMPLETE": RunStatus.to_string(RunStatus.FINISHED),
    "PRUNED": RunStatus.to_string(RunStatus.FINISHED),
    "FAIL": RunStatus.to_string(RunStatus.FAILED),
    "KILLED": RunStatus.to_string(RunStatus.KILLED),
}
_MAX_PARAM_LENGTH = 6000


@dataclass(frozen=True)
class TrackingSettings:
    tracking_uri: str
    registry_uri: str
    artifact_location: str


def _absolute_uri(uri: str, base: Path) -> str:
    """`sqlite:///relative.db` and plain paths are taken relative to mlflow.yml's folder."""
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


def load_settings(explicit: str | Path | None = None) -> TrackingSettings:
    """Reads mlflow.yml; `MLFLOW_TRACKING_URI` overrides its tracking URI (MLflow's own convention)."""
    path = find_settings_file(explicit)
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        base = path.resolve().parent
        raw = yaml.safe_load(path.read_text()) or {}
        unknown = set(raw) - {"tracking_uri", "registry_uri", "artifact_location"}
        if unknown:
            raise ConfigError(
                f"{path}: unknown key {sorted(unknown)[0]!r}; allowed keys: "
                "tracking_uri, registry_uri, artifact_location."
            )
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or raw.get("tracking_uri") or DEFAULT_TRACKING_URI
    tracking = _absolute_uri(str(tracking), base)
    registry = _absolute_uri(str(raw.get("registry_uri") or tracking), base)
    artifacts = _absolute_uri(str(raw.get("artifact_location") or DEFAULT_ARTIFACTS), base)
    return TrackingSettings(tracking, registry, artifacts)


def _prepare_local_store(settings: TrackingSettings) -> None:
    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


class Tracker:
    """Writes studies and trials to MLflow through one `MlflowClient` (no global active run)."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        _prepare_local_store(settings)
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_registry_uri(settings.registry_uri)
        self.client = MlflowClient(settings.tracking_uri, settings.registry_uri)

    def check_reachable(self) -> None:
        try:
            self.client.search_experiments(max_results=1)
        except Exception as error:  # any transport or database error means the same to the user
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise ConvtuneError(
                f"MLflow tracking store {self.settings.tracking_uri} is unreachable ({reason}); "
                "start it, or fix tracking_uri in mlflow.yml / MLFLOW_TRACKING_URI."
            ) from None

    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        location = f"{self.settings.artifact_location.rstrip('/')}/{name}"
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another worker created it first
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def study_run(self, study_name: str, existing_run_id: str | None = None) -> str:
        """The study's parent run: the one recorded in the study, else a new one."""
        if existing_run_id:
            try:
                self.client.get_run(existing_run_id)
                return existing_run_id
            except MlflowException:
                pass
        run = self.client.create_run(
            self.experiment_id(study_name),
            run_name=study_name,
            tags={"optuna.study": study_name, "convtune.role": "study"},
        )
        return run.info.run_id

    def start_trial(
        self,
        *,
        study_name: str,
        parent_run_id: str,
        trial_number: int,
        params: Mapping[str, Any],
        tags: Mapping[str, str] = {},
    ) -> str:
        run = self.client.create_run(
            self.experiment_id(study_name),
            run_name=f"trial-{trial_number:04d}",
            tags={
                "mlflow.parentRunId": parent_run_id,
                "optuna.study": study_name,
                "optuna.trial_number": str(trial_number),
                "optuna.state": "RUNNING",
                "convtune.role": "trial",
                **tags,
            },
        )
        run_id = run.info.run_id
        self.log_params(run_id, params)
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def finish(self, run_id: str, state: str, *, error: str | None = None) -> None:
        """Ends a run with a status that agrees with the Optuna state (a pruned trial is no crash)."""
        tags = {"optuna.state": state}
        if error:
            tags["convtune.error"] = error.strip().splitlines()[-1][:500] if error.strip() else error
        self.set_tags(run_id, tags)
        if error:
            self.log_text(run_id, error, "error.txt")
        self.client.set_terminated(run_id, STATE_TO_STATUS[state])

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status


class EpochMetricsCallback(pl.Callback):
    """Logs the epoch's metrics to a run as one batch, step = epoch."""

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self.tracker = tracker
        self.run_id = run_id

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key in EPOCH_METRICS and value.numel() == 1
        }
        self.tracker.log_metrics(self.run_id, metrics, step=trainer.current_epoch)
