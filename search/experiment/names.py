"""Names and paths from the user that convtune turns into files, folders, experiments and models.

One rule for every name (`--study`, the experiment's `name:`, registry names and aliases): it
becomes an Optuna study, an MLflow experiment and registered model, and a folder of the artifact
store, so it may hold no path parts, spaces, quotes or characters a file system refuses, and is
short enough for any file name built from it. Paths convtune writes to (`export --out`, `explain
--out`) are checked before any work, without creating anything.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from search.errors import ConfigError

MAX_NAME_LENGTH = 128
NAME_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}$")
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} characters from letters, digits, '_', '-' and '.', "
    "starting with a letter or digit, without '..'"
)
_SHOWN = 40  # characters of a refused value echoed back


def name_problem(value: object, what: str) -> str | None:
    """Why `value` cannot be a name (one line that states the rule), or None when it can."""
    if isinstance(value, str) and NAME_PATTERN.match(value) and ".." not in value:
        return None
    return f"{what} must be {NAME_RULE}, but got {what}={shown(value)}."


def check_name(value: str, what: str) -> str:
    """`value` when it follows the name rule; a `ConfigError` naming `what` and the rule otherwise."""
    problem = name_problem(value, what)
    if problem is not None:
        raise ConfigError(problem)
    return value


def shown(value: object) -> str:
    """`repr(value)`, cut to a readable length for a one-line message."""
    if isinstance(value, str) and len(value) > _SHOWN:
        return f"{value[:_SHOWN]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= 2 * _SHOWN else text[: 2 * _SHOWN] + "..."


def check_output_file(path: str | Path, what: str) -> Path:
    """A file path convtune may write: not a folder, and under a folder that exists or can be made."""
    if not str(path).strip():
        raise ConfigError(f"{what} is empty; give a file name, like {what} model.onnx.")
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(
            f"{what} {target} is a folder; give a file name inside it, like {target}/model.onnx."
        )
    _check_writable_folder(target.parent, what, target)
    return target


def check_output_folder(path: str | Path, what: str) -> Path:
    """A folder convtune may write into: a folder already, or one that can be made."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{what} {target} is a file; give a folder (it is created when missing).")
    _check_writable_folder(target, what, target)
    return target


def writable_folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (or in the folders that would be made for it), or None.

    The nearest existing folder is tried with a temporary file that is removed at once, since
    permissions alone do not tell (root may not write in /proc, a read-only mount refuses everyone).
    """
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return os.strerror(error.errno or errno.EACCES).lower() + f" in {existing}"
    return None


def _check_writable_folder(folder: Path, what: str, target: Path) -> None:
    problem = writable_folder_problem(folder)
    if problem is not None:
        raise ConfigError(
            f"{what} {target} cannot be created ({problem}); choose a path in a folder you can write."
        )
