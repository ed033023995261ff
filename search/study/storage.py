"""The Optuna storage a study lives in: a journal file (the embedded default) or a database, and the
lock under which workers claim trials from it."""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from search.errors import ConvtuneError, first_line
from search.file_lock import exclusive_lock
from search.study import optuna_adapter as adapter
from search.study.journal_tail import mend_journal_tail
from search.study.storage_url import DEFAULT_STORAGE, RDB_PREFIXES, check_storage, sqlite_path


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
            with exclusive_lock(self.lock_path):
                yield
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
    import sqlalchemy  # lazy: ~0.1 s of start-up that only a PostgreSQL storage needs

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
    lock = JournalFileOpenLock(str(path))
    mend_journal_tail(path, lock)
    backend = JournalFileBackend(str(path), lock_obj=lock)
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
