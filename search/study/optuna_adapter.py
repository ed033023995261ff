"""The one place where convtune reaches past Optuna's public study API (checked on optuna 5.0.0).

convtune's workers run trials with ask/tell and keep their own liveness records, so they need to
read and write a trial by number from outside the `Trial` object (the reaper, the heartbeat thread,
the retry after an interrupt). Optuna's public storage methods do that (`get_study_id_from_name`,
`get_trial_id_from_study_id_trial_number`, `get_trial`, `set_trial_user_attr`,
`set_trial_state_values`, `RDBStorage.record_heartbeat`); what Optuna keeps private is the study's
storage object itself, `Study._storage`, read in `storage_of` below and nowhere else. Stale RDB
heartbeats are found by Optuna's public `fail_stale_trials` and reported through the storage's
`heartbeat_stale_trial_callback`, which `stale_trial_callback` dispatches to the active listeners.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

CHECKED_WITH = "optuna 5.0.0"
StaleListener = Callable[[optuna.Study, FrozenTrial], None]

_listeners: list[StaleListener] = []
_listeners_lock = threading.Lock()


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage (private in Optuna: `Study._storage`)."""
    return study._storage


def trial_id(study: optuna.Study, number: int) -> int:
    storage = storage_of(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def frozen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    return storage_of(study).get_trial(trial_id(study, number))


def set_trial_attr(study: optuna.Study, number: int, key: str, value: Any) -> None:
    storage_of(study).set_trial_user_attr(trial_id(study, number), key, value)


def fail_trial(study: optuna.Study, number: int) -> bool:
    """FAIL a RUNNING trial; False when another process finished it first."""
    return storage_of(study).set_trial_state_values(trial_id(study, number), TrialState.FAIL)


def heartbeat_storage(study: optuna.Study) -> RDBStorage | None:
    """The RDB storage when it keeps heartbeats (`heartbeat_interval` set), else None."""
    storage = storage_of(study)
    if isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None:
        return storage
    return None


def stale_trial_callback(study: optuna.Study, trial: FrozenTrial) -> None:
    """Given to `RDBStorage(heartbeat_stale_trial_callback=...)`; calls the active listeners."""
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(study, trial)


@contextlib.contextmanager
def listening_for_stale(listener: StaleListener) -> Iterator[None]:
    with _listeners_lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners.remove(listener)


def fail_stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Optuna's `fail_stale_trials`; the trials it failed (RDB storages with heartbeats only)."""
    failed: list[FrozenTrial] = []
    if heartbeat_storage(study) is None:
        return failed
    with listening_for_stale(lambda _study, trial: failed.append(trial)):
        optuna.storages.fail_stale_trials(study)
    return failed
