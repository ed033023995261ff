"""Before the first trial: every check, then the study, its storage, tracker and parent run.

Nothing is written before every check passes; a remote storage is checked before the tracking
store, so that an unreachable database leaves no local MLflow store behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna

from search.experiment.serialized import config_params, experiment_tree
from search.experiment.spec import ExperimentSpec
from search.parallel.heartbeat import HEARTBEAT_INTERVAL, TrialGuard
from search.study.preflight import Preflight, preflight
from search.study.storage import StorageHandle, open_storage
from search.study.storage_url import RDB_PREFIXES
from search.study.study import open_study
from search.study.warm_start import WarmStartReport, load_source, warm_start
from search.tracking import load_settings
from search.tracking import vocabulary as v
from search.tracking.settings import redact
from search.tracking.tracker import Tracker
from search.tracking.ui_links import experiment_view_tags, param_columns

if TYPE_CHECKING:
    from search.study.runner import TuneOptions


@dataclass
class PreparedStudy:
    """A checked study ready to run: its storage, tracker, parent run and the preflight's findings."""

    study: optuna.Study
    handle: StorageHandle
    tracker: Tracker
    parent_run_id: str
    checked: Preflight
    warm: WarmStartReport | None = None


def prepare_study(spec: ExperimentSpec, options: TuneOptions) -> PreparedStudy:
    """All checks, then the study and its parent run; trials of workers that died earlier are failed
    and queued for retry."""
    checked = preflight(spec)
    remote = bool(options.storage) and options.storage.startswith(RDB_PREFIXES)  # type: ignore[union-attr]
    if remote:
        handle = open_storage(options.storage, heartbeat_interval=HEARTBEAT_INTERVAL)
    tracker = Tracker(load_settings())
    tracker.check_reachable()
    if not remote:
        handle = open_storage(options.storage)
    warm = spec.search.warm_start
    source = load_source(warm, handle, options.study_name or spec.name) if warm else None
    study = open_study(spec, handle, options.study_name, (checked.in_channels, checked.image_size))
    parent_run_id = tracker.study_run(study.study_name, study.user_attrs.get(v.STUDY_ATTR_PARENT_RUN))
    report = None
    if warm is not None and source is not None:
        report = warm_start(study, source, spec, warm.top_k)
        where = f" in {redact(warm.storage)}" if warm.storage else ""
        tracker.set_tags(parent_run_id, {v.TAG_WARM_START: f"study {report.source}{where}"})
    study.set_user_attr(v.STUDY_ATTR_PARENT_RUN, parent_run_id)
    study.set_user_attr(v.STUDY_ATTR_EXPERIMENT, experiment_tree(spec))
    tracker.describe_study(study.study_name, study_view(spec))
    tracker.set_tags(parent_run_id, {v.TAG_STATUS: "running"})
    with handle.claim_lock():
        TrialGuard(tracker, spec.search.max_retries).reap(study)
    return PreparedStudy(study, handle, tracker, parent_run_id, checked, report)


def study_view(spec: ExperimentSpec) -> dict[str, str]:
    """Experiment tags that open the study in MLflow's training view, best trials first, with the
    metric and the searched params as columns (search.tracking.ui_links)."""
    searched = param_columns(spec.search.space, config_params(spec.run_config()))
    metric, direction = spec.search.metric, spec.search.resolved_direction
    return experiment_view_tags(metric, direction, searched, now_ms=int(time.time() * 1000))
