"""`TrackingStore`: one client to the MLflow store: experiments, and what runs hold.

Params, metrics, tags, text and artifacts, checkpoints, dataset inputs and system metrics, written to
runs by id (no global active run). Every call goes through a `ResilientClient` (a busy SQLite store or
a restarting server is waited out), epoch metrics through a `MetricsBuffer` (training never waits for
the server). Which runs exist and how they start and end is `search.tracking.tracker.Tracker`'s part.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from search.errors import ConvtuneError, first_line
from search.file_lock import exclusive_lock
from search.tracking import vocabulary as v
from search.tracking.buffer import MetricsBuffer
from search.tracking.datasets import DataSplit, dataset_entity_fields
from search.tracking.resilience import (
    ResilientClient,
    outage_seconds,
    quick_http,
    use_study_http_defaults,
)
from search.tracking.settings import TrackingSettings, redact

_MAX_PARAM_LENGTH = 6000
_MAX_TAG_LENGTH = 5000
SYSTEM_METRICS_INTERVAL = 5.0  # seconds between samples of CPU, memory (and GPU) per trial

_logger = logging.getLogger(__name__)


def _prepare_local_store(settings: TrackingSettings) -> None:
    """The SQLite file exists with MLflow's tables, and uses WAL so that workers write side by side.

    MLflow creates and migrates its tables on a process's first connection; two commands starting at
    once on a fresh project would both migrate (`table _alembic_tmp_experiments already exists`), so
    the first connection is made under a lock file beside the database."""
    if not settings.tracking_uri.startswith("sqlite:///"):
        return
    path = Path(settings.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_name(path.name + ".lock")):
        client = MlflowClient(settings.tracking_uri, settings.registry_uri)
        client.search_experiments(max_results=1)
        if settings.registry_uri == settings.tracking_uri:
            client.search_registered_models(max_results=1)
    try:
        with sqlite3.connect(path, timeout=30) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:  # busy for 30 s: the client's retries still help
        _logger.warning("could not switch %s to WAL: %s", path, error)


class TrackingStore:
    """Experiments and the contents of runs, through one resilient client."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        _prepare_local_store(settings)
        use_study_http_defaults()
        mlflow.set_tracking_uri(settings.tracking_uri)  # for model logging and downloads
        mlflow.set_registry_uri(settings.registry_uri)
        self._client = ResilientClient(MlflowClient(settings.tracking_uri, settings.registry_uri))
        self._buffer = MetricsBuffer(self._write_metrics)
        self._experiments: dict[str, str] = {}

    # --- the store and its experiments -------------------------------------------------------------

    def check_reachable(self) -> None:
        """One quick request; an unreachable store is one `ConvtuneError` line within seconds."""
        try:
            with quick_http():
                self._client.wrapped.search_experiments(max_results=1)
        except Exception as error:  # any transport or database error means the same to the user
            raise ConvtuneError(
                f"MLflow tracking store {redact(self.settings.tracking_uri)} is unreachable "
                f"({first_line(error, drop_period=True)}); "
                f"start it, or {self.settings.where_to_fix()}."
            ) from None

    def experiment_id(self, name: str) -> str:
        """The study's experiment, created on first use: with mlflow.yml's artifact location for a
        store on this machine, with the server's own artifact root for a tracking server."""
        if name in self._experiments:
            return self._experiments[name]
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self._client.restore_experiment(experiment.experiment_id)
            self._experiments[name] = experiment.experiment_id
            return experiment.experiment_id
        location = None
        if self.settings.artifact_location is not None:
            location = f"{self.settings.artifact_location.rstrip('/')}/{name}"
        try:
            experiment_id = self._client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another worker created it first
            experiment = self._client.get_experiment_by_name(name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
        self._experiments[name] = experiment_id
        return experiment_id

    def artifact_location(self, study_name: str) -> str:
        experiment = self._client.get_experiment(self.experiment_id(study_name))
        return str(experiment.artifact_location)

    def describe_study(self, study_name: str, tags: Mapping[str, str]) -> None:
        """Experiment tags that tell the MLflow UI (and people) what the study optimizes."""
        experiment_id = self.experiment_id(study_name)
        for key, value in tags.items():
            self._client.set_experiment_tag(experiment_id, key, str(value)[:_MAX_TAG_LENGTH])

    def last_experiments(self, limit: int) -> list[tuple[str, str, dict[str, str]]]:
        """(name, id, tags) of the newest experiments, MLflow's Default left out."""
        found = self._client.search_experiments(max_results=limit + 1, order_by=["creation_time DESC"])
        return [(e.name, e.experiment_id, dict(e.tags)) for e in found if e.name != "Default"][:limit]

    # --- what runs hold ----------------------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Metrics stored before this returns (summaries); epochs go through `log_epoch`."""
        self._write_metrics(run_id, _metric_batch(metrics, step))

    def log_epoch(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """One epoch's metrics, queued: written in order by a background thread, retried through an
        outage; `flush` (and a trial's `finish`) waits for them."""
        self._buffer.put(run_id, _metric_batch(metrics, step))

    def flush(self, run_id: str, timeout: float | None = None) -> None:
        """Waits until `run_id`'s queued epochs are stored (at most the outage budget and a minute)."""
        failure = self._buffer.flush(run_id, timeout if timeout is not None else outage_seconds() + 60)
        if failure is not None:
            _logger.warning("some epoch metrics of run %s were not stored: %s", run_id, failure)

    def _write_metrics(self, run_id: str, batch: Sequence[Metric]) -> None:
        for start in range(0, len(batch), 1000):
            self._client.log_batch(run_id, metrics=list(batch[start : start + 1000]))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        items = [RunTag(k, str(value)[:_MAX_TAG_LENGTH]) for k, value in tags.items()]
        self._client.log_batch(run_id, tags=items)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._client.log_text(run_id, text, path)

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(run_id, str(local_dir), artifact_path)

    def read_text(self, run_id: str | None, path: str) -> str | None:
        """An artifact's text, or None when the run or the artifact does not exist."""
        if not run_id:
            return None
        try:
            local = self._client.download_artifacts(run_id, path)
            return Path(local).read_text()
        except Exception:  # no such run or artifact: the caller decides what that means
            return None

    def download_artifacts(self, run_id: str, path: str, destination: str | Path) -> Path:
        Path(destination).mkdir(parents=True, exist_ok=True)
        return Path(self._client.download_artifacts(run_id, path, str(destination)))

    def log_data(self, run_id: str, splits: Sequence[DataSplit]) -> None:
        """The data a run trained and validated on, as MLflow dataset inputs (the UI's Dataset column)."""
        inputs = [
            DatasetInput(
                Dataset(**dataset_entity_fields(split)),
                tags=[InputTag("mlflow.data.context", split.split)],
            )
            for split in splits
        ]
        self._client.log_inputs(run_id, datasets=inputs)

    @contextlib.contextmanager
    def system_metrics(self, run_id: str, enabled: bool = True) -> Iterator[None]:
        """MLflow's system metrics (CPU, memory, disk, network; GPU with nvidia-ml-py) while the body
        runs, sampled every `SYSTEM_METRICS_INTERVAL` seconds; silently off where unavailable."""
        monitor = None
        if enabled:
            try:
                # imported inside the try: without psutil the import itself fails, and training goes on
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                monitor = SystemMetricsMonitor(
                    run_id,
                    sampling_interval=SYSTEM_METRICS_INTERVAL,
                    tracking_uri=self.settings.tracking_uri,
                )
                monitor.start()
            except Exception as error:  # psutil missing, an exotic platform: training goes on
                _logger.info("system metrics off: %s", error)
                monitor = None
        try:
            yield
        finally:
            if monitor is not None:
                with contextlib.suppress(Exception):
                    monitor.finish()
                    # a trial shorter than one interval still gets the samples taken so far
                    leftover = monitor.aggregate_metrics()
                    if leftover:
                        monitor.publish_metrics(leftover)
                        monitor.mlflow_logger.flush()

    # --- a trial's checkpoint ----------------------------------------------------------------------

    def upload_checkpoint(self, run_id: str, path: Path) -> None:
        """A trial's latest checkpoint into its run's artifacts (replacing the previous epoch's).

        MLflow's own HTTP retries only, not the outage budget: training does not wait out a server
        that is away; the next epoch's upload replaces a missed one."""
        self._client.wrapped.log_artifact(run_id, str(path), v.ARTIFACT_CHECKPOINT_DIR)

    def download_checkpoint(self, run_id: str, name: str, destination: Path) -> Path | None:
        """The run's checkpoint artifact `name`, downloaded into `destination`; None when absent."""
        try:
            names = [
                Path(f.path).name for f in self._client.list_artifacts(run_id, v.ARTIFACT_CHECKPOINT_DIR)
            ]
        except MlflowException:
            return None
        if name not in names:
            return None
        destination.mkdir(parents=True, exist_ok=True)
        local = self._client.download_artifacts(
            run_id, f"{v.ARTIFACT_CHECKPOINT_DIR}/{name}", str(destination)
        )
        return Path(local)

    def delete_checkpoint(self, run_id: str) -> None:
        """Removes the run's checkpoint artifacts (the trial finished, or will not be retried)."""
        if not self._client.list_artifacts(run_id, v.ARTIFACT_CHECKPOINT_DIR):
            return
        artifact_uri = self._client.get_run(run_id).info.artifact_uri
        repository = get_artifact_repository(artifact_uri, self.settings.tracking_uri)
        repository.delete_artifacts(v.ARTIFACT_CHECKPOINT_DIR)


def _metric_batch(metrics: Mapping[str, float], step: int) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in metrics.items()]
