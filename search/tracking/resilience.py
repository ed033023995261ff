"""Talking to a tracking store that is sometimes busy or away.

Two kinds of trouble are waited out instead of failing a trial:
- a local SQLite store written by several worker processes answers "database is locked" (SQLite
  refuses a read transaction's upgrade to a write while another process writes; MLflow rolled the
  transaction back, so a retry is safe);
- a tracking server that restarts or drops off the network: connection refused, timeouts, 502/503/504.

`ResilientClient` retries such calls with exponential backoff for up to `outage_seconds` (the env
variable `CONVTUNE_TRACKING_OUTAGE_SECONDS`, default 600 s) in all, on top of MLflow's own HTTP
retries, which the study's processes set to a few quick ones so that this budget is what counts. Any
other error (a missing run, a bad parameter) is raised at once. The start-up probe is the opposite:
no retries and a short timeout, so an unreachable server is one line within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from search.errors import ConfigError, first_line

OUTAGE_ENV = "CONVTUNE_TRACKING_OUTAGE_SECONDS"
DEFAULT_OUTAGE_SECONDS = 600.0
PROBE_TIMEOUT_SECONDS = 5
MAX_WAIT_SECONDS = 15.0
# MLflow's HTTP client alone would retry a refused connection 7 times over about four minutes per
# call; a few quick retries leave the waiting to ResilientClient, whose budget covers the whole outage.
STUDY_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
_LOCKED = ("database is locked", "database table is locked")
_UNREACHABLE = (
    "Connection refused",
    "Connection aborted",
    "Connection reset",
    "Max retries exceeded",
    "Failed to establish a new connection",
    "timed out",
    "Remote end closed connection",
    "RemoteDisconnected",
    "too many 502 error responses",
    "too many 503 error responses",
    "too many 504 error responses",
)

T = TypeVar("T")
_logger = logging.getLogger(__name__)


def outage_seconds() -> float:
    text = os.environ.get(OUTAGE_ENV, "").strip()
    if not text:
        return DEFAULT_OUTAGE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{OUTAGE_ENV} must be a number of seconds >= 0, but got {text!r}.")
    return value


def use_study_http_defaults() -> None:
    """MLflow's HTTP retry settings for a study's processes, unless the user set them."""
    for name, value in STUDY_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def quick_http() -> Iterator[None]:
    """No HTTP retries and a short timeout while the body runs (the start-up probe)."""
    quick = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(PROBE_TIMEOUT_SECONDS),
    }
    previous = {name: os.environ.get(name) for name in quick}
    os.environ.update(quick)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _messages(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield f"{type(current).__name__}: {current}"
        current = current.__cause__ or current.__context__


# two machines inserting the same row at once (MLflow's tag writes and its dataset inputs are
# read-then-insert): the loser's transaction is rolled back and its retry finds the row and uses it,
# so for the writes that set a value by key the race is as transient as a lock
_RACED = ("UNIQUE constraint failed", "duplicate key value violates unique constraint")
_KEYED_WRITES = frozenset(
    {
        "set_experiment_tag",
        "set_tag",
        "log_batch",
        "log_inputs",
        "set_model_version_tag",
        "set_registered_model_alias",
    }
)


def is_race(error: BaseException) -> bool:
    return any(marker in text for text in _messages(error) for marker in _RACED)


def is_locked(error: BaseException) -> bool:
    return any(marker in text for text in _messages(error) for marker in _LOCKED)


def is_unreachable(error: BaseException) -> bool:
    texts = list(_messages(error))
    if any("too many 500 error responses" in text for text in texts):
        return False  # the server answered, with an error of its own: retrying will not help
    return any(marker in text for text in texts for marker in _UNREACHABLE)


def is_transient(error: BaseException) -> bool:
    return is_locked(error) or is_unreachable(error)


def call_with_retry(
    call: Callable[..., T],
    *args: Any,
    budget: float | None = None,
    what: str = "MLflow call",
    retry_races: bool = False,
    **kwargs: Any,
) -> T:
    """`call(*args, **kwargs)`, retried on transient errors (and, with `retry_races`, on another
    writer's insert of the same key) for up to `budget` seconds."""
    budget = outage_seconds() if budget is None else budget
    deadline = time.monotonic() + budget
    wait = 0.2
    warned = False
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            retried = is_transient(error) or (retry_races and is_race(error))
            if not retried or time.monotonic() + wait > deadline:
                raise
            if is_unreachable(error) and not warned:
                reason = first_line(error, drop_period=True)
                _logger.warning("%s: tracking store unreachable (%s); retrying", what, reason)
                warned = True
            time.sleep(wait * (0.5 + random.random()))
            wait = min(wait * 2, MAX_WAIT_SECONDS)


class ResilientClient:
    """An `MlflowClient` proxy whose every public method goes through `call_with_retry`."""

    def __init__(self, client: Any, budget: float | None = None) -> None:
        self._client = client
        self._budget = budget

    @property
    def wrapped(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value) or name.startswith("_"):
            return value

        races = name in _KEYED_WRITES

        def call(*args: Any, **kwargs: Any) -> Any:
            what = f"MLflow {name}"
            return call_with_retry(value, *args, budget=self._budget, what=what, retry_races=races, **kwargs)

        return call
