"""One trial: sample, check, build, train, track; returns the best epoch's monitored metric."""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import torch

from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.module import NonFiniteLossError
from lightning_modules.precision import resolve_precision
from lightning_modules.resume import EpochCheckpoint, RngState
from lightning_modules.training import RunParts, build_run, create_trainer, data_device
from search.experiment.serialized import config_params, config_yaml
from search.experiment.space import suggest
from search.experiment.spec import ExperimentSpec
from search.parallel.checkpoints import CheckpointStore
from search.parallel.resume import Resume, ResumeRecord, config_digest, find_resume
from search.study.budget_gate import record_cost
from search.study.feasibility import infeasibility
from search.study.pareto_pruning import ParetoPruningCallback, pareto_rule
from search.study.pruning import PruningCallback
from search.study.weights import resolve_weights
from search.tracking import vocabulary as v
from search.tracking.callbacks import DataInputsCallback, EpochMetricsCallback
from search.tracking.tracker import Tracker

ArtifactWriter = Callable[[RunParts, RunConfig, BestWeights, Path], None]

_logger = logging.getLogger(__name__)


@dataclass
class TrialSettings:
    """How this worker runs its trials."""

    device: str = "cpu"
    accelerator: str | None = None
    artifacts: bool = True
    extra_callbacks: Sequence[Callable[[optuna.Trial], pl.Callback]] = ()
    artifact_writers: list[ArtifactWriter] = field(default_factory=list)
    gpu_ids: list[int] | None = None  # in-process GPU worker: Lightning's `devices` as CUDA indices
    system_metrics: bool = True  # MLflow's CPU/memory/GPU samples on every trial's run
    checkpoints: bool = True  # save every epoch; a retry continues from the last (search.parallel.resume)


class Objective:
    """Callable for `study.optimize` or ask/tell; every trial leaves one MLflow child run."""

    def __init__(
        self,
        spec: ExperimentSpec,
        tracker: Tracker,
        *,
        study_name: str,
        parent_run_id: str,
        data_shape: tuple[int, tuple[int, int]],
        settings: TrialSettings | None = None,
    ) -> None:
        self.spec = spec
        self.tracker = tracker
        self.study_name = study_name
        self.parent_run_id = parent_run_id
        self.in_channels, self.image_size = data_shape
        self.settings = settings or TrialSettings()
        self.last_parts: RunParts | None = None
        self.last_costs: dict[str, float] = {}
        self.checkpoints = CheckpointStore.for_study(study_name, tracker)

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        params, config = suggest(trial, self.spec)
        digest = config_digest(config)
        resume = self._find_resume(trial, digest)
        run_id = self._start_run(trial, params, config, resume)
        try:
            value = self._train(trial, config, run_id, resume, digest)
        except optuna.TrialPruned as pruned:
            self.tracker.set_tags(run_id, {v.TAG_PRUNED_REASON: str(pruned)})
            self.tracker.finish(run_id, "PRUNED")
            self.checkpoints.discard(run_id)
            raise
        except (KeyboardInterrupt, SystemExit) as error:
            self._close_interrupted(trial, run_id, error)  # the checkpoint stays for the retry
            raise
        except BaseException as error:
            message = "".join(traceback.format_exception(error))
            trial.set_user_attr(v.ATTR_ERROR, f"{type(error).__name__}: {error}"[:500])
            self.tracker.finish(run_id, "FAIL", error=message)
            self.checkpoints.discard(run_id)
            raise
        self.tracker.log_metrics(run_id, {v.METRIC_OBJECTIVE: value})
        self.tracker.finish(run_id, "COMPLETE")
        self.checkpoints.discard(run_id)
        return self._objective_values(value)

    def _find_resume(self, trial: optuna.Trial, digest: str) -> Resume | None:
        """The checkpoint a retry continues from; any trouble finding it means training from epoch 1."""
        if not self._checkpointing:
            return None
        try:
            return find_resume(trial, self.checkpoints, digest)
        except Exception as error:  # storage or server hiccup: losing the epochs beats losing the trial
            _logger.warning("trial %s starts from epoch 1: no checkpoint found (%s)", trial.number, error)
            return None

    @property
    def _checkpointing(self) -> bool:
        return self.settings.checkpoints and self.spec.search.checkpoints

    def _objective_values(self, value: float) -> float | list[float]:
        """The metric, then (in a Pareto study) the trial's cost objectives."""
        costs = self.spec.search.cost_objectives
        return [value, *(self.last_costs[metric] for metric in costs)] if costs else value

    def _close_interrupted(self, trial: optuna.Trial, run_id: str, error: BaseException) -> None:
        """SIGTERM or Ctrl-C: Optuna gets FAIL (and a retry), MLflow KILLED with tag optuna.state=FAIL."""
        reason = f"interrupted ({type(error).__name__}); the trial is retried when the study resumes"
        trial.set_user_attr(v.ATTR_INTERRUPTED, reason)
        self.tracker.interrupt(run_id, reason)

    def _start_run(
        self, trial: optuna.Trial, params: dict[str, Any], config: RunConfig, resume: Resume | None
    ) -> str:
        trial.set_user_attr(v.ATTR_DEVICE, self.settings.device)
        if resume is not None:
            return self._resume_run(trial, resume)
        run_id = self.tracker.start_trial(
            study_name=self.study_name,
            parent_run_id=self.parent_run_id,
            trial_number=trial.number,
            params=config_params(config),
            tags={
                v.TAG_DEVICE: self.settings.device,
                v.TAG_SAMPLED: ",".join(params),
                v.TAG_PRECISION: resolve_precision(config.trainer.precision, self._accelerator(config)),
            },
        )
        trial.set_user_attr(v.ATTR_RUN_ID, run_id)
        self.tracker.log_text(run_id, config_yaml(config), "config.yaml")
        return run_id

    def _resume_run(self, trial: optuna.Trial, resume: Resume) -> str:
        """The dead trial's run, open again, its epoch history completed from the checkpoint."""
        self.tracker.resume_trial(
            resume.run_id,
            trial_number=trial.number,
            epochs=resume.epochs,
            tags={v.TAG_DEVICE: self.settings.device},
        )
        trial.set_user_attr(v.ATTR_RUN_ID, resume.run_id)
        trial.set_user_attr(v.ATTR_RESUMED_AT, resume.epochs)
        logged = self.tracker.logged_steps(resume.run_id, self.spec.search.metric)
        for epoch, metrics in sorted(resume.history.items()):
            if epoch < resume.epochs and epoch not in logged:
                self.tracker.log_epoch(resume.run_id, metrics, step=epoch)
        return resume.run_id

    def _resume_callbacks(self, trial: optuna.Trial, run_id: str, digest: str) -> list[pl.Callback]:
        """Every epoch saved (after pruning has judged it, before its metrics are sent), RNG included."""
        if not self._checkpointing:
            return []
        return [
            ResumeRecord(digest, run_id, trial.number),
            RngState(),
            EpochCheckpoint(
                self.checkpoints.path(run_id),
                lambda path, epochs: self.checkpoints.saved(run_id, path, epochs),
            ),
        ]

    def _train(
        self, trial: optuna.Trial, config: RunConfig, run_id: str, resume: Resume | None, digest: str
    ) -> float:
        reason = infeasibility(config, self.in_channels, self.image_size)
        if reason is not None:
            trial.set_user_attr(v.ATTR_INFEASIBLE, reason)
            self.tracker.set_tags(run_id, {v.TAG_INFEASIBLE: reason[:500]})
            raise optuna.TrialPruned(f"infeasible architecture: {reason}")
        started = time.perf_counter()
        # GPU trials keep their data on the GPU
        device = data_device(self._accelerator(config), self.settings.gpu_ids)
        parts = build_run(config, weights_resolver=resolve_weights, device=device)
        self.last_parts = parts
        self.last_costs = self._record_cost(trial, config, parts, run_id, device)  # over budget: pruned
        best = BestWeights(self.spec.search.metric, "max" if self._maximize else "min")
        epoch_metrics = EpochMetricsCallback(self.tracker, run_id)
        callbacks: list[pl.Callback] = [
            best,
            self._pruning_callback(trial),
            *self._resume_callbacks(trial, run_id, digest),
            epoch_metrics,
        ]
        if resume is None:  # a resumed run already holds its data inputs
            callbacks.append(DataInputsCallback(self.tracker, run_id))
        callbacks += [make(trial) for make in self.settings.extra_callbacks]
        overrides: dict[str, Any] = (
            {"accelerator": self.settings.accelerator} if self.settings.accelerator else {}
        )
        if self.settings.gpu_ids:
            overrides["devices"] = self.settings.gpu_ids
        trainer = create_trainer(config.trainer, callbacks=callbacks, **overrides)
        try:
            with self.tracker.system_metrics(run_id, enabled=self.settings.system_metrics):
                trainer.fit(
                    parts.module,
                    datamodule=parts.datamodule,
                    ckpt_path=resume.path if resume is not None else None,
                    weights_only=True if resume is not None else None,
                )
        except optuna.TrialPruned:
            epoch_metrics.log_judged_epoch(trainer)  # the epoch the pruner judged ends the run's curve
            raise
        except NonFiniteLossError as error:
            # a search result, not a crash: pruned trials inform the sampler, failed ones are invisible to it
            trial.set_user_attr(v.ATTR_DIVERGED, str(error)[:500])
            raise optuna.TrialPruned(f"diverged: {error}") from None
        trial.set_user_attr(v.ATTR_EPOCHS_TRAINED, trainer.current_epoch - (resume.epochs if resume else 0))
        if best.best_value is None:
            raise RuntimeError(f"no {self.spec.search.metric} was measured; check limit_val_batches.")
        self.tracker.log_metrics(
            run_id,
            {
                v.METRIC_BEST_EPOCH: float(best.best_epoch or 0),
                v.METRIC_TRAIN_SECONDS: time.perf_counter() - started,
            },
        )
        if self.settings.artifacts:
            self._write_artifacts(parts, config, best, run_id)
        return best.best_value

    def _record_cost(
        self,
        trial: optuna.Trial,
        config: RunConfig,
        parts: RunParts,
        run_id: str,
        device: torch.device | None,
    ) -> dict[str, float]:
        data = parts.datamodule
        return record_cost(
            trial,
            self.tracker,
            run_id,
            parts.module.model,
            config,
            self.spec.search.budgets,
            data_shape=(data.in_channels, data.image_size, data.num_classes),
            device=device or "cpu",
            precision=resolve_precision(config.trainer.precision, self._accelerator(config)),
        )

    def _pruning_callback(self, trial: optuna.Trial) -> pl.Callback:
        """Optuna's pruner through `trial.report`, or in a Pareto study the Pareto rule."""
        search = self.spec.search
        if not search.is_pareto:
            return PruningCallback(trial, search.metric)
        costs = [self.last_costs[metric] for metric in search.cost_objectives]
        return ParetoPruningCallback(trial, search.metric, costs, search.cost_objectives, pareto_rule(search))

    def _write_artifacts(self, parts: RunParts, config: RunConfig, best: BestWeights, run_id: str) -> None:
        if not self.settings.artifact_writers:
            return
        with tempfile.TemporaryDirectory(prefix="convtune-artifacts-") as folder:
            for write in self.settings.artifact_writers:
                write(parts, config, best, Path(folder))
            self.tracker.log_artifacts(run_id, folder)

    def _accelerator(self, config: RunConfig) -> str:
        """The worker's accelerator (set for GPU workers), else the experiment's."""
        return self.settings.accelerator or config.trainer.accelerator

    @property
    def _maximize(self) -> bool:
        return self.spec.search.resolved_direction == "maximize"
