"""Optuna studies: storage, sampler, pruner, and the loop a worker runs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from search.errors import ConfigError, ConvtuneError, first_line
from search.experiment.space import grid_of
from search.experiment.spec import ExperimentSpec
from search.parallel import open_work
from search.parallel.memory import release_memory
from search.study import optuna_adapter as adapter
from search.study.cost import CostAwareTPESampler, macs_estimator
from search.study.storage_url import DEFAULT_STORAGE, RDB_PREFIXES, check_storage, sqlite_path
from search.tracking import vocabulary as v

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

optuna.logging.set_verbosity(optuna.logging.WARNING)
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StorageHandle:
    """An Optuna storage and the lock that serializes trial claims on it."""

    url: str
    storage: BaseStorage
    lock_path: Path | None

    @contextlib.contextmanager
    def claim_lock(self) -> Iterator[None]:
        """Held while a worker counts trials and asks for a new one, so no study overshoots N."""
        if self.lock_path is not None:
            with open(self.lock_path, "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with _advisory_lock(self.storage):
            yield


@contextlib.contextmanager
def _advisory_lock(storage: BaseStorage) -> Iterator[None]:
    """A PostgreSQL advisory lock on the study storage's own database (other RDBs: no lock)."""
    engine = getattr(storage, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    import sqlalchemy

    key = int(hashlib.sha1(b"convtune-claim").hexdigest()[:15], 16)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def open_storage(url: str | None, *, heartbeat_interval: int | None = None) -> StorageHandle:
    """An RDB URL, or a journal file path (the embedded default, safe for several processes)."""
    check_storage(url or None)
    url = url or DEFAULT_STORAGE
    if url.startswith(RDB_PREFIXES):
        return _open_rdb(url, heartbeat_interval)
    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return StorageHandle(str(path), JournalStorage(backend), Path(f"{path}.claim.lock"))


def _open_rdb(url: str, heartbeat_interval: int | None) -> StorageHandle:
    kwargs: dict[str, Any] = {}
    if heartbeat_interval:
        kwargs = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": heartbeat_interval * 3,
            "heartbeat_stale_trial_callback": adapter.stale_trial_callback,
        }
    engine_kwargs = {"connect_args": {"connect_timeout": 5}} if url.startswith("postgres") else None
    database = sqlite_path(url) if url.startswith("sqlite:") else None
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = _create_rdb(url, engine_kwargs, kwargs)
    except Exception as error:
        reason = first_line(error)
        raise ConvtuneError(
            f"study storage {_redact(url)} is unreachable ({reason}); start the database or fix --storage."
        ) from None
    lock_path = None
    if url.startswith("sqlite:///"):
        lock_path = Path(url.removeprefix("sqlite:///") + ".claim.lock")
    return StorageHandle(url, storage, lock_path)


def _create_rdb(url: str, engine_kwargs: dict[str, Any] | None, kwargs: dict[str, Any]) -> RDBStorage:
    """`RDBStorage`, created again when another machine created the same fresh database's tables at
    the same moment (PostgreSQL then refuses the second CREATE TABLE with a unique violation)."""
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as error:
            racing = "already exists" in str(error) or "UniqueViolation" in str(error)
            if not racing or attempt == 3:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(
    spec: ExperimentSpec, data_shape: tuple[int, tuple[int, int]] | None = None
) -> optuna.samplers.BaseSampler:
    """The experiment's sampler; a cost-aware TPE needs the input's `(channels, (height, width))`."""
    config = spec.search.sampler
    seed = config.seed if config.seed is not None else spec.seed
    startup = config.n_startup_trials
    if config.name == "tpe":
        options = {
            "seed": seed,
            "n_startup_trials": 10 if startup is None else startup,
            "multivariate": config.multivariate,
            "group": config.multivariate,  # one joint model per group of parameters sampled together
        }
        if config.cost_aware and data_shape is None:
            raise ValueError("a cost-aware sampler needs data_shape=(channels, (height, width)).")
        with warnings.catch_warnings():  # `group` is marked experimental; convtune pins its use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if config.cost_aware:
                return CostAwareTPESampler(macs_estimator(spec, data_shape), **options)
            return optuna.samplers.TPESampler(**options)
    if config.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.name == "grid":
        try:
            return optuna.samplers.GridSampler(grid_of(spec), seed=seed)
        except ValueError as error:
            raise ConfigError(f"search.sampler: {error}") from None
    if config.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup or 1)
    if config.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, startup or 20))
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10 if startup is None else startup)


def make_pruner(spec: ExperimentSpec) -> optuna.pruners.BasePruner:
    config = spec.search.pruner
    max_epochs = spec.trainer.max_epochs
    if config.name == "median":
        return optuna.pruners.MedianPruner(  # steps are epochs trained: 1 after the first epoch
            n_startup_trials=config.n_startup_trials, n_warmup_steps=config.n_warmup_steps + 1
        )
    if config.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=config.min_resource,
            max_resource=max_epochs,
            reduction_factor=config.reduction_factor,
        )
    if config.name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.min_resource, reduction_factor=config.reduction_factor
        )
    return optuna.pruners.NopPruner()  # none; pareto prunes in its own callback (search.study.pareto_pruning)


def open_study(
    spec: ExperimentSpec,
    handle: StorageHandle,
    study_name: str | None = None,
    data_shape: tuple[int, tuple[int, int]] | None = None,
) -> optuna.Study:
    """Creates the study, or loads it when it exists (rerunning resumes).

    A fresh study samples from the experiment's seed; a study that already exists (a resumed run, or
    another worker joining) reseeds its sampler, so that no two processes draw the same sequence.
    """
    name = study_name or spec.name
    directions = spec.search.directions
    existed = name in optuna.get_all_study_names(handle.storage)
    try:
        study = optuna.create_study(
            storage=handle.storage,
            study_name=name,
            sampler=make_sampler(spec, data_shape),
            pruner=make_pruner(spec),
            directions=directions,
            load_if_exists=True,
        )
    except ValueError as error:
        raise ConfigError(f"study {name!r}: {error}") from None
    found = [direction.name.lower() for direction in study.directions]
    if found != directions:
        raise ConfigError(
            f"study {name!r} in {handle.url} has directions {', '.join(found)}, but the experiment's "
            f"search.direction/objectives give {', '.join(directions)}; use another --study name."
        )
    if existed:
        study.sampler.reseed_rng()
    return study


def find_study(handle: StorageHandle, name: str) -> optuna.Study:
    names = optuna.get_all_study_names(handle.storage)
    if name not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(
            f"no study named {name!r} in {handle.url} (studies there: {known}); run `convtune tune` first."
        )
    return optuna.load_study(study_name=name, storage=handle.storage)


def is_prior(trial: FrozenTrial) -> bool:
    """A finished trial copied from another study by a warm start (`search.warm_start`): the sampler
    learns from it, but it is no trial of this study (not counted, never its best)."""
    return v.ATTR_WARM_START_OF in trial.user_attrs


def own_trials(study: optuna.Study, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
    """The study's trials without the priors a warm start added."""
    trials = study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)
    return [trial for trial in trials if not is_prior(trial)]


def count_states(study: optuna.Study) -> dict[str, int]:
    counts = {state.name: 0 for state in TrialState}
    for trial in own_trials(study):
        counts[trial.state.name] += 1
    return counts


def claim_trial(
    study: optuna.Study,
    handle: StorageHandle,
    n_trials: int,
    *,
    reap: Callable[[optuna.Study], object] | None = None,
) -> optuna.Trial | None:
    """A new trial (or a waiting retry) while the study has fewer than N finished or running trials.

    `reap` runs first under the same lock: it fails the trials of dead workers (and enqueues their
    retries), so that they neither count as running nor get reaped twice.
    """
    if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
        return None
    with handle.claim_lock():
        if reap is not None:
            reap(study)
        trials = own_trials(study)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        active = sum(t.state in (*FINISHED, TrialState.RUNNING) for t in trials)
        if not waiting and active >= n_trials:
            return None
        return study.ask()


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The COMPLETE trial with the best metric (a Pareto study's first objective: its most accurate)."""
    completed = own_trials(study, (TrialState.COMPLETE,))
    if not completed:
        return None
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(completed, key=lambda t: t.values[0])


TrialObserver = Callable[[optuna.Study, FrozenTrial], None]


class TrialGuardLike(Protocol):
    """What `run_worker` needs from `search.parallel.heartbeat.TrialGuard`."""

    def watch(self, study: optuna.Study, trial: optuna.Trial) -> contextlib.AbstractContextManager[None]: ...

    def reap(self, study: optuna.Study) -> list[int]: ...

    def retry(self, study: optuna.Study, trial: FrozenTrial) -> int | None: ...


def register_trial(study: optuna.Study, trial: optuna.Trial, guard: TrialGuardLike | None = None) -> str:
    """Registers a claimed trial in `open_work`: if this process dies on an unexpected error, the
    trial is closed as FAIL with the reason (and queued for retry by `guard`) instead of staying
    RUNNING. Returns the key to pass to `open_work.closed` once the trial was told."""
    key = f"optuna-trial:{study.study_name}:{trial.number}"
    open_work.opened(key, lambda reason: _fail_if_open(study, trial, reason, guard))
    return key


def _fail_if_open(
    study: optuna.Study, trial: optuna.Trial, reason: str, guard: TrialGuardLike | None
) -> None:
    if adapter.frozen_trial(study, trial.number).state.is_finished():
        return
    adapter.set_trial_attr(study, trial.number, v.ATTR_ERROR, reason[:500])
    if adapter.fail_trial(study, trial.number) and guard is not None:
        guard.retry(study, adapter.frozen_trial(study, trial.number))


@dataclass
class WorkerResult:
    ran: int
    failed: int
    stopped_by: str


def run_worker(
    study: optuna.Study,
    handle: StorageHandle,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout: float | None = None,
    max_failures: int | None = None,
    observers: Sequence[TrialObserver] = (),
    guard: TrialGuardLike | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    out_of_time: Callable[[], bool] = lambda: False,
) -> WorkerResult:
    """Claims and runs trials until the study holds N finished ones, time is up, or too many fail.

    With a `guard`, each trial records its worker and heartbeat, dead workers' trials are reaped
    before every claim, and a trial interrupted by SIGTERM/Ctrl-C is closed as FAIL and enqueued
    again with the same params; `should_stop` turning true ends the loop after the current trial.
    `out_of_time` (a time budget's search share, `search.time_budget.deadlines`) ends it before the
    next claim.
    Freed memory goes back to the system after every trial.
    """
    deadline = time.monotonic() + timeout if timeout else None
    limit = max_failures if max_failures is not None else max(3, n_trials)
    ran = failed = 0
    while True:
        if should_stop():
            return WorkerResult(ran, failed, "interrupted")
        if deadline is not None and time.monotonic() >= deadline:
            return WorkerResult(ran, failed, "timeout")
        if out_of_time():
            return WorkerResult(ran, failed, "budget")
        if failed >= limit:
            return WorkerResult(ran, failed, "failures")
        trial = claim_trial(study, handle, n_trials, reap=guard.reap if guard is not None else None)
        if trial is None:
            return WorkerResult(ran, failed, "n_trials")
        key = register_trial(study, trial, guard)
        try:
            with guard.watch(study, trial) if guard is not None else contextlib.nullcontext():
                state = run_one(study, trial, objective)
        except (KeyboardInterrupt, SystemExit):
            frozen = adapter.frozen_trial(study, trial.number)
            if frozen.state.is_finished():
                open_work.closed(key)
            if guard is not None:
                guard.retry(study, frozen)
            raise
        open_work.closed(key)
        ran += 1
        failed += state == TrialState.FAIL
        frozen = adapter.frozen_trial(study, trial.number)
        for observe in observers:
            observe(study, frozen)
        release_memory()  # a long-lived worker would otherwise stay at its largest trial's peak


def run_one(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]
) -> TrialState:
    """Runs the objective and tells Optuna how it ended; Ctrl-C/SIGTERM closes the trial, then stops."""
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        return tell(study, trial, TrialState.PRUNED)
    except (KeyboardInterrupt, SystemExit):
        tell(study, trial, TrialState.FAIL)
        raise
    except Exception:  # the objective recorded the error; the study goes on
        return tell(study, trial, TrialState.FAIL)
    return tell(study, trial, TrialState.COMPLETE, value)


def tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None = None
) -> TrialState:
    """`study.tell`, tolerating a trial that a reaper already failed (a false alarm on a slow worker),
    and a grid sampler's `study.stop()`, which Optuna refuses outside `optimize`: the trial is stored
    before that hook runs, and `claim_trial` stops at an exhausted grid.
    """
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise
    except (ValueError, UpdateFinishedTrialError) as error:
        frozen = adapter.frozen_trial(study, trial.number)
        if not frozen.state.is_finished():
            raise
        _logger.warning("trial %s was already %s: %s", trial.number, frozen.state.name, error)
        return frozen.state
    return state
