"""`Tracker`: studies, trials and reproductions as MLflow runs, in convtune's own words.

One experiment per study, one parent run per study, one child run per trial (DESIGN.md). Every call
goes through a `ResilientClient` (a busy SQLite store or a restarting server is waited out), epoch
metrics through a `MetricsBuffer` (training never waits for the server), and every run this process
opens is registered in `search.parallel.open_work` until it is closed, so that a crash closes it too.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from search.errors import ConvtuneError, first_line
from search.parallel import open_work
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

STATE_TO_STATUS = {
    "COMPLETE": RunStatus.to_string(RunStatus.FINISHED),
    "PRUNED": RunStatus.to_string(RunStatus.FINISHED),
    "FAIL": RunStatus.to_string(RunStatus.FAILED),
    "KILLED": RunStatus.to_string(RunStatus.KILLED),
}
RUNNING = RunStatus.to_string(RunStatus.RUNNING)
_MAX_PARAM_LENGTH = 6000
_MAX_TAG_LENGTH = 5000
SYSTEM_METRICS_INTERVAL = 5.0  # seconds between samples of CPU, memory (and GPU) per trial
ABANDON_SECONDS = 10.0  # how long a crashing command tries to close its runs

_logger = logging.getLogger(__name__)


def _prepare_local_store(settings: TrackingSettings) -> None:
    """The SQLite file's folder exists, and the file uses WAL so that workers write side by side."""
    if not settings.tracking_uri.startswith("sqlite:///"):
        return
    path = Path(settings.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        try:
            with sqlite3.connect(path, timeout=30) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:  # busy for 30 s: the client's retries still help
            _logger.warning("could not switch %s to WAL: %s", path, error)


class Tracker:
    """Writes studies and trials to MLflow through one client (no global active run)."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        _prepare_local_store(settings)
        use_study_http_defaults()
        mlflow.set_tracking_uri(settings.tracking_uri)  # for model logging and downloads
        mlflow.set_registry_uri(settings.registry_uri)
        client = MlflowClient(settings.tracking_uri, settings.registry_uri)
        self._client = ResilientClient(client)
        self._leaving = ResilientClient(client, budget=ABANDON_SECONDS)  # a dying process waits little
        self._buffer = MetricsBuffer(self._write_metrics)
        self._experiments: dict[str, str] = {}

    # --- the store ---------------------------------------------------------------------------------

    def check_reachable(self) -> None:
        """One quick request; an unreachable store is one `ConvtuneError` line within seconds."""
        try:
            with quick_http():
                self._client.wrapped.search_experiments(max_results=1)
        except Exception as error:  # any transport or database error means the same to the user
            raise ConvtuneError(
                f"MLflow tracking store {redact(self.settings.tracking_uri)} is unreachable "
                f"({first_line(error, drop_period=True)}); start it, or fix {self.settings.source} "
                "(MLFLOW_TRACKING_URI or tracking_uri in mlflow.yml)."
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

    # --- runs --------------------------------------------------------------------------------------

    def _create_run(self, study_name: str, run_name: str, tags: Mapping[str, str]) -> str:
        run = self._client.create_run(self.experiment_id(study_name), run_name=run_name, tags=dict(tags))
        run_id = str(run.info.run_id)
        open_work.opened(f"mlflow-run:{run_id}", lambda reason: self._abandon(run_id, reason))
        return run_id

    def _abandon(self, run_id: str, reason: str) -> None:
        """Closes a run that its process is leaving behind (the safety net in the command line)."""
        killed = "interrupt" in reason.lower()
        tags = {v.TAG_ERROR: reason[:500]}
        if self._leaving.get_run(run_id).data.tags.get(v.TAG_STATE) == "RUNNING":
            tags[v.TAG_STATE] = "FAIL"
        self._leaving.log_batch(run_id, tags=[RunTag(k, val) for k, val in tags.items()])
        self._leaving.set_terminated(run_id, "KILLED" if killed else "FAILED")

    def _end(self, run_id: str, status: str) -> None:
        self._client.set_terminated(run_id, status)
        open_work.closed(f"mlflow-run:{run_id}")

    def _tags(self, run_id: str) -> dict[str, str]:
        return dict(self._client.get_run(run_id).data.tags)

    def study_run(self, study_name: str, existing_run_id: str | None = None) -> str:
        """The study's parent run: the one recorded in the study, else a new one."""
        if existing_run_id:
            try:
                self._client.get_run(existing_run_id)
                open_work.opened(
                    f"mlflow-run:{existing_run_id}", lambda reason: self._abandon(existing_run_id, reason)
                )
                return existing_run_id
            except MlflowException:
                pass
        tags = {v.TAG_STUDY: study_name, v.TAG_ROLE: v.ROLE_STUDY}
        return self._create_run(study_name, study_name, tags)

    def end_study(self, run_id: str, status: str, *, interrupted: bool = False) -> None:
        """Tags how the study ended (`n_trials`, `timeout`, `failures`, `interrupted`) and closes its run."""
        self.set_tags(run_id, {v.TAG_STATUS: status})
        self._end(run_id, "KILLED" if interrupted else "FINISHED")

    def start_trial(
        self,
        *,
        study_name: str,
        parent_run_id: str,
        trial_number: int,
        params: Mapping[str, Any],
        tags: Mapping[str, str] = {},
    ) -> str:
        run_id = self._create_run(
            study_name,
            f"trial-{trial_number:04d}",
            {
                v.TAG_PARENT_RUN: parent_run_id,
                v.TAG_STUDY: study_name,
                v.TAG_TRIAL_NUMBER: str(trial_number),
                v.TAG_STATE: "RUNNING",
                v.TAG_ROLE: v.ROLE_TRIAL,
                **tags,
            },
        )
        self.log_params(run_id, params)
        return run_id

    def start_reproduction(
        self, *, study_name: str, trial_number: int, original_run_id: str | None, tags: Mapping[str, str]
    ) -> str:
        return self._create_run(
            study_name,
            f"reproduce-trial-{trial_number:04d}",
            {
                v.TAG_REPRODUCTION_OF: original_run_id or "",
                v.TAG_STUDY: study_name,
                v.TAG_TRIAL_NUMBER: str(trial_number),
                v.TAG_ROLE: v.ROLE_REPRODUCTION,
                **tags,
            },
        )

    def start_ensemble(self, *, study_name: str, trial_numbers: list[int], tags: Mapping[str, str]) -> str:
        """The run of `reproduce --top-k`: its members' reproduction runs are nested under it."""
        return self._create_run(
            study_name,
            f"ensemble-top{len(trial_numbers)}",
            {
                v.TAG_STUDY: study_name,
                v.TAG_ROLE: v.ROLE_ENSEMBLE,
                v.TAG_ENSEMBLE_TRIALS: ",".join(map(str, trial_numbers)),
                **tags,
            },
        )

    def link_ensemble_members(self, run_id: str, member_runs: list[str]) -> None:
        """Tags the ensemble's run with every member's run id (one tag each, and all in one)."""
        tags = {f"{v.TAG_ENSEMBLE_MEMBER_PREFIX}{index}": member for index, member in enumerate(member_runs)}
        self.set_tags(run_id, {v.TAG_ENSEMBLE_MEMBERS: ",".join(member_runs), **tags})

    def finish(self, run_id: str, state: str, *, error: str | None = None) -> None:
        """Ends a trial's run once its epochs are stored, with a status that agrees with the Optuna
        state (a pruned trial is no crash)."""
        self.flush(run_id)
        tags = {v.TAG_STATE: state}
        if error:
            tags[v.TAG_ERROR] = error.strip().splitlines()[-1][:500] if error.strip() else error
        self.set_tags(run_id, tags)
        if error:
            self.log_text(run_id, error, "error.txt")
        self._end(run_id, STATE_TO_STATUS[state])

    def interrupt(self, run_id: str, reason: str) -> None:
        """SIGTERM or Ctrl-C: KILLED in MLflow, tag optuna.state=FAIL (the trial is retried)."""
        with contextlib.suppress(TimeoutError):
            self.flush(run_id, timeout=10)
        self.set_tags(run_id, {v.TAG_STATE: "FAIL", v.TAG_ERROR: reason[:500]})
        self._end(run_id, "KILLED")

    def resume_trial(
        self, run_id: str, *, trial_number: int, epochs: int, tags: Mapping[str, str] = {}
    ) -> None:
        """Opens a dead trial's run again for the retry that continues its checkpoint: one run holds
        the whole series of epochs; its trial-number tag moves to the retry, the earlier trials
        stay listed in `convtune.trials`."""
        old = self._tags(run_id)
        earlier = old.get(v.TAG_TRIALS) or old.get(v.TAG_TRIAL_NUMBER, "")
        trials = ",".join(part for part in (earlier, str(trial_number)) if part)
        resumed = f"after epoch {epochs} (trial {old.get(v.TAG_TRIAL_NUMBER, '?')} -> trial {trial_number})"
        self._client.update_run(run_id, status=RUNNING, name=f"trial-{trial_number:04d}")
        open_work.opened(f"mlflow-run:{run_id}", lambda reason: self._abandon(run_id, reason))
        self.set_tags(
            run_id,
            {
                v.TAG_STATE: "RUNNING",
                v.TAG_TRIAL_NUMBER: str(trial_number),
                v.TAG_TRIALS: trials,
                v.TAG_RESUMED: ", ".join(p for p in (old.get(v.TAG_RESUMED, ""), resumed) if p),
                **tags,
            },
        )
        if v.TAG_ERROR in old:
            self._client.delete_tag(run_id, v.TAG_ERROR)

    def logged_steps(self, run_id: str, metric: str) -> set[int]:
        """The steps at which the run holds `metric` (its epochs, for an epoch metric)."""
        return {int(m.step) for m in self._client.get_metric_history(run_id, metric)}

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
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if not self._client.list_artifacts(run_id, v.ARTIFACT_CHECKPOINT_DIR):
            return
        artifact_uri = self._client.get_run(run_id).info.artifact_uri
        repository = get_artifact_repository(artifact_uri, self.settings.tracking_uri)
        repository.delete_artifacts(v.ARTIFACT_CHECKPOINT_DIR)

    def end_run(self, run_id: str, *, error: BaseException | None = None) -> None:
        """Closes a reproduction's run: FINISHED, or FAILED/KILLED with the error as a tag."""
        self.flush(run_id)
        if error is None:
            self._end(run_id, "FINISHED")
            return
        self.set_tags(run_id, {v.TAG_ERROR: f"{type(error).__name__}: {error}"[:500]})
        self._end(run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def close_trial_run(
        self, study_name: str, trial_number: int, run_id: str | None, reason: str, *, status: str
    ) -> None:
        """Ends a dead trial's run (found by id, else by its tags) unless it already ended."""
        for found in [run_id] if run_id else self._trial_run_ids(study_name, trial_number):
            if self._client.get_run(found).info.status != RUNNING:
                continue
            self.set_tags(found, {v.TAG_STATE: "FAIL", v.TAG_ERROR: reason[:500]})
            self._end(found, status)

    def _trial_run_ids(self, study_name: str, trial_number: int) -> list[str]:
        experiment = self._client.get_experiment_by_name(study_name)
        if experiment is None:
            return []
        runs = self._client.search_runs(
            [experiment.experiment_id],
            f"tags.`{v.TAG_TRIAL_NUMBER}` = '{trial_number}' and tags.`{v.TAG_ROLE}` = '{v.ROLE_TRIAL}'",
        )
        return [str(run.info.run_id) for run in runs]

    def run_status(self, run_id: str) -> str:
        return str(self._client.get_run(run_id).info.status)

    def run_tag(self, run_id: str | None, key: str) -> str | None:
        """A run's tag, or None when the run or the tag does not exist (another store, deleted)."""
        if not run_id:
            return None
        try:
            return self._tags(run_id).get(key)
        except MlflowException:
            return None

    # --- what runs hold ----------------------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Metrics stored before this returns (summaries); epochs go through `log_epoch`."""
        self._write_metrics(run_id, _metric_batch(metrics, step))

    def log_epoch(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """One epoch's metrics, queued: written in order by a background thread, retried through an
        outage; `finish` waits for them."""
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

    # --- models ------------------------------------------------------------------------------------

    def new_logged_model(self, run_id: str, name: str) -> str:
        """A pending MLflow LoggedModel in the run's experiment, linked to the run (the UI's Models
        column); `mlflow.<flavor>.log_model(model_id=...)` fills and finalizes it. Created here because
        log_model without a global active run would file the model under the Default experiment."""
        run = self._client.get_run(run_id)
        params = {key: str(value) for key, value in run.data.params.items()}
        model = self._client.create_logged_model(
            run.info.experiment_id, name=name, source_run_id=run_id, params=params
        )
        return str(model.model_id)

    def register_model(self, name: str, version: str, alias: str, tags: Mapping[str, str]) -> None:
        """Points `alias` at a registered model version and tags it."""
        self._client.set_registered_model_alias(name, alias, version)
        for key, value in tags.items():
            self._client.set_model_version_tag(name, version, key, value)

    def last_experiments(self, limit: int) -> list[tuple[str, str, dict[str, str]]]:
        """(name, id, tags) of the newest experiments, MLflow's Default left out."""
        found = self._client.search_experiments(max_results=limit + 1, order_by=["creation_time DESC"])
        return [(e.name, e.experiment_id, dict(e.tags)) for e in found if e.name != "Default"][:limit]


def _metric_batch(metrics: Mapping[str, float], step: int) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in metrics.items()]
