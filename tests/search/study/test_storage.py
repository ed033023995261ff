"""The Optuna storage a study lives in, and the lock its workers claim trials under."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage

from search.errors import ConvtuneError
from search.study.storage import open_storage
from search.study.storage_url import DEFAULT_STORAGE


def test_unreachable_postgresql_is_one_line_within_ten_seconds() -> None:
    started = time.perf_counter()
    with pytest.raises(ConvtuneError, match="unreachable") as caught:
        open_storage("postgresql://nobody@127.0.0.1:1/optuna")
    assert time.perf_counter() - started < 10
    assert "\n" not in str(caught.value)


def test_the_default_is_a_journal_file_with_its_claim_lock_beside_it(workdir: Path) -> None:
    handle = open_storage(None)
    assert handle.url == DEFAULT_STORAGE and isinstance(handle.storage, JournalStorage)
    assert handle.lock_path == Path(f"{DEFAULT_STORAGE}.claim.lock")
    with handle.claim_lock():
        optuna.create_study(storage=handle.storage, study_name="s")
    assert handle.lock_path.is_file()
    sqlite = open_storage("sqlite:///db/study.db")
    assert sqlite.lock_path == Path("db/study.db.claim.lock") and (workdir / "db").is_dir()


def test_a_password_in_an_unreachable_url_is_not_repeated() -> None:
    with pytest.raises(ConvtuneError) as caught:
        open_storage("postgresql://nobody:secret@127.0.0.1:1/optuna")
    assert "secret" not in str(caught.value) and "postgresql://***@127.0.0.1:1/optuna" in str(caught.value)
