"""A journal file's last record, checked before a study opens it.

Optuna appends each batch of records as whole lines. A writer stopped part-way through a line (the
disk filled up, the machine lost power) leaves a record with no line end; Optuna's reader skips it,
but the next record appended is glued onto it, and from then on the study cannot be read at all.
`mend_journal_tail` moves such a cut-off record aside before anything is appended, and refuses a
journal whose last line is no record, naming the line, instead of Optuna's traceback later.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

from optuna.storages.journal import JournalFileOpenLock

from search.errors import ConvtuneError

_logger = logging.getLogger(__name__)
CHUNK = 1 << 16


def mend_journal_tail(path: Path, lock: JournalFileOpenLock) -> Path | None:
    """Moves a cut-off last record of the journal at `path` to a sibling file, under the journal's
    own lock so that no writer is part-way through a line; returns that file, or None when the
    journal ends in a whole line (or does not exist yet). A whole journal is only read: no lock, and
    a read-only copy opens as well."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb") as journal:
        end = journal.seek(0, os.SEEK_END)
        if _last_line_end(journal, end) == end:
            _check_last_line(path, journal, end)
            return None
    lock.acquire()  # the tail may be a writer's line in progress: look again under the lock
    try:
        moved = _move_cut_off(path)
    finally:
        lock.release()
    if moved is None:
        return None
    aside, size = moved
    message = (
        f"{path.name} ended in a record cut off mid-write ({size} bytes: a full disk or a lost "
        f"machine?); moved it to {aside.name}, and the study is read up to the last whole record."
    )
    _logger.warning(message)
    print(f"warning: {message}", file=sys.stderr)  # the log file alone is not where anyone looks
    return aside


def _move_cut_off(path: Path) -> tuple[Path, int] | None:
    """Truncates the journal to its last whole line, the rest written to a sibling file first."""
    with path.open("rb+") as journal:
        end = journal.seek(0, os.SEEK_END)
        line_end = _last_line_end(journal, end)
        if line_end == end:
            return None
        journal.seek(line_end)
        cut_off = journal.read()
        aside = path.with_name(f"{path.name}.cut-off-{time.strftime('%Y%m%dT%H%M%S')}")
        aside.write_bytes(cut_off)
        journal.truncate(line_end)
        journal.flush()
        os.fsync(journal.fileno())
    return aside, len(cut_off)


def _last_line_end(journal: BinaryIO, end: int) -> int:
    """The offset just past the journal's last line end (0 when it holds none)."""
    position = end
    while position > 0:
        start = max(position - CHUNK, 0)
        journal.seek(start)
        chunk: bytes = journal.read(position - start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        position = start
    return 0


def _check_last_line(path: Path, journal: BinaryIO, end: int) -> None:
    """Refuses a journal whose last whole line is not a JSON record."""
    previous = _last_line_end(journal, end - 1)
    journal.seek(previous)
    line: bytes = journal.read(end - previous)
    try:
        json.loads(line)
    except ValueError:
        shown = line[:60].decode("utf-8", "replace").rstrip()
        raise ConvtuneError(
            f"{path} ends in a line that is no journal record ({shown!r}...), so Optuna cannot read "
            "the study; copy the file, then remove that line or the part before the last '{\"op_code\"' "
            "in it (a record glued onto one cut off mid-write)."
        ) from None
