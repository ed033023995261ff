"""What `--storage` may be, checked before anything is opened or written.

An RDB URL (`sqlite:///file.db`, `postgresql://...`, `mysql...`) or a journal file path (the
embedded default). Anything else with a `scheme://` is refused rather than taken for a path, and a
path must be a file convtune can create: not a folder, not under a file or a read-only place.
"""

from __future__ import annotations

import re
from pathlib import Path

from search.errors import ConfigError
from search.experiment.names import writable_folder_problem

DEFAULT_STORAGE = ".convtune/optuna.journal"
RDB_PREFIXES = ("sqlite:", "postgresql", "postgres:", "mysql")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FORMS = "sqlite:///file.db, postgresql://user@host/db, or a journal file path"


def is_rdb(url: str) -> bool:
    return url.startswith(RDB_PREFIXES)


def check_storage(url: str | None) -> None:
    """Raises a `ConfigError` (one line, exit 2) when `url` cannot be a study storage; writes nothing."""
    if url is None:
        _check_file(Path(DEFAULT_STORAGE), "the default storage")
        return
    if not url.strip():
        raise ConfigError(f"--storage is empty; give {_FORMS}, or leave --storage out for {DEFAULT_STORAGE}.")
    if "\x00" in url:
        raise ConfigError(f"--storage contains a NUL character; give {_FORMS}.")
    if url.startswith("sqlite:"):
        _check_sqlite(url)
        return
    if is_rdb(url):
        return  # a database server: whether it answers is found when it is opened
    scheme = _SCHEME.match(url)
    if scheme:
        raise ConfigError(
            f"--storage: unknown storage scheme '{scheme.group(1)}://'; give {_FORMS} (without a scheme)."
        )
    _check_file(Path(url).expanduser(), f"--storage {url}")


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///...` URL (None for an in-memory database)."""
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if not path or path == ":memory:" or path == url else Path(path)


def _check_sqlite(url: str) -> None:
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"--storage {url}: a SQLite URL has three slashes, like sqlite:///optuna.db.")
    path = sqlite_path(url)
    if path is not None:
        _check_file(path, f"--storage {url}")


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise ConfigError(f"{what} is a folder; give a file inside it, like {path / 'optuna.journal'}.")
    problem = writable_folder_problem(path.parent)
    if problem is not None:
        raise ConfigError(f"{what} cannot be written ({problem}); give a file in a folder you can write.")
