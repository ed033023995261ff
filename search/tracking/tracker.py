"""`Tracker`: studies, trials and reproductions as MLflow runs, in convtune's own words.

One experiment per study, one parent run per study, one child run per trial (DESIGN.md). This module
says which runs exist and how they start and end (a pruned trial is no crash; a killed one is
closed); `search.tracking.store.TrackingStore` writes what they hold. Every run this process opens is
registered in `search.parallel.open_work` until it is closed, so that a crash closes it too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow.entities import RunStatus, RunTag
from mlflow.exceptions import MlflowException

from search.parallel import open_work
from search.tracking import vocabulary as v
from search.tracking.resilience import ResilientClient
from search.tracking.settings import TrackingSettings
from search.tracking.store import TrackingStore

_logger = logging.getLogger(__name__)

STATE_TO_STATUS = {
    "COMPLETE": RunStatus.to_string(RunStatus.FINISHED),
    "PRUNED": RunStatus.to_string(RunStatus.FINISHED),
    "FAIL": RunStatus.to_string(RunStatus.FAILED),
    "KILLED": RunStatus.to_string(RunStatus.KILLED),
}
RUNNING = RunStatus.to_string(RunStatus.RUNNING)
ABANDON_SECONDS = 10.0  # how long a crashing command tries to close its runs


@dataclass(frozen=True)
class RunProgress:
    running: bool
    epochs: int  # epochs logged of the metric asked for
    last: float | None  # its last value
    replanned: int | None = None  # its epochs as a deadline re-planned them (None: as planned)


class Tracker(TrackingStore):
    """Writes studies and trials to MLflow through one client (no global active run)."""

    def __init__(self, settings: TrackingSettings) -> None:
        super().__init__(settings)
        # a dying process waits little to close its runs
        self._leaving = ResilientClient(self._client.wrapped, budget=ABANDON_SECONDS)

    # --- opening and closing runs ------------------------------------------------------------------

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

    # --- the study's run ---------------------------------------------------------------------------

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

    # --- a trial's run -----------------------------------------------------------------------------

    def start_trial(
        self,
        *,
        study_name: str,
        parent_run_id: str,
        trial_number: int,
        params: Mapping[str, object],
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

    def training_progress(self, run_id: str, metric: str) -> RunProgress:
        """Whether the run still runs, how many epochs of `metric` it has logged, and the last one."""
        history = sorted(self._client.get_metric_history(run_id, metric), key=lambda m: m.step)
        run = self._client.get_run(run_id)
        replanned = run.data.tags.get(v.TAG_EPOCHS_REPLANNED)
        last = history[-1].value if history else None
        return RunProgress(
            run.info.status == RUNNING, len(history), last, int(replanned) if replanned else None
        )

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

    # --- reproductions and ensembles ---------------------------------------------------------------

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

    def end_run(self, run_id: str, *, error: BaseException | None = None) -> None:
        """Closes a reproduction's run: FINISHED, or FAILED/KILLED with the error as a tag."""
        self.flush(run_id)
        if error is None:
            self._end(run_id, "FINISHED")
            return
        self.set_tags(run_id, {v.TAG_ERROR: f"{type(error).__name__}: {error}"[:500]})
        stopped = isinstance(error, (KeyboardInterrupt, SystemExit))  # Lightning exits after Ctrl-C
        self._end(run_id, "KILLED" if stopped else "FAILED")

    # --- reading runs back -------------------------------------------------------------------------

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

    def discard_logged_model(self, model_id: str) -> None:
        """Deletes a LoggedModel whose logging failed part-way, so the run lists no half-written
        model; once, without waiting out an outage (a model left behind then stays PENDING)."""
        try:
            self._client.wrapped.delete_logged_model(model_id)
        except Exception as error:  # the store is down: the failure being handled is what matters
            _logger.warning("could not delete the unfinished logged model %s: %s", model_id, error)

    def model_version_of(self, name: str, model_id: str) -> str | None:
        """The version of the registered model `name` made from the logged model `model_id`, if any."""
        quoted = name.replace("'", "\\'")
        versions = self._client.search_model_versions(filter_string=f"name = '{quoted}'")
        source = f"models:/{model_id}"  # what a SQL store keeps: it has no model_id column
        made = (found for found in versions if found.model_id == model_id or found.source == source)
        return next((str(found.version) for found in made), None)

    def register_model(self, name: str, version: str, alias: str, tags: Mapping[str, str]) -> None:
        """Points `alias` at a registered model version and tags it."""
        self._client.set_registered_model_alias(name, alias, version)
        for key, value in tags.items():
            self._client.set_model_version_tag(name, version, key, value)
