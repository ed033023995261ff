"""What this process has opened and must close if it dies: MLflow runs, Optuna trials.

Whoever opens something long-lived registers how to close it (`opened`) and says when it closed
normally (`closed`). The command line's safety net calls `close_all` on its way out of an
unexpected error, so that no run or trial this process owned stays RUNNING. Importing this module
costs nothing: it imports neither MLflow nor Optuna.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

Closer = Callable[[str], None]

_lock = threading.Lock()
_open: dict[str, Closer] = {}
_logger = logging.getLogger(__name__)


def opened(key: str, close: Closer) -> None:
    """Registers `close(reason)` for `key` (e.g. `mlflow-run:<id>`, `optuna-trial:<study>:<n>`)."""
    with _lock:
        _open[key] = close


def closed(key: str) -> None:
    """`key` ended normally; nothing to do for it on the way out."""
    with _lock:
        _open.pop(key, None)


def still_open() -> list[str]:
    with _lock:
        return list(_open)


def close_all(reason: str) -> list[str]:
    """Closes everything still open, newest first (trials before the runs that hold them); a closer
    that fails is logged and skipped, since the process is already on its way out."""
    with _lock:
        pending = list(_open.items())[::-1]
        _open.clear()
    done = []
    for key, close in pending:
        try:
            close(reason)
            done.append(key)
        except Exception as error:
            _logger.warning("could not close %s on the way out: %s", key, error)
    return done
