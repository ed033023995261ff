"""A journal's last record, checked before a study opens it: a record cut off mid-write is moved
aside, and a last line that is no record is refused in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest

from search.errors import ConvtuneError
from search.study.storage import open_storage

CUT_OFF = b'{"op_code":4,"worker_id":"a1b2'


def _study_with_trials(path: Path, n: int) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)).storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=n)


def test_a_record_cut_off_mid_write_is_moved_aside_and_the_study_goes_on(
    workdir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = workdir / "optuna.journal"
    _study_with_trials(journal, 3)
    whole = journal.read_bytes()
    with journal.open("ab") as file:
        file.write(CUT_OFF)  # a writer stopped part-way through its line
    with caplog.at_level(logging.WARNING):
        study = optuna.load_study(study_name="s", storage=open_storage(str(journal)).storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert journal.read_bytes().startswith(whole)
    (aside,) = workdir.glob("optuna.journal.cut-off-*")
    assert aside.read_bytes() == CUT_OFF
    assert "cut off mid-write (30 bytes" in caplog.text and aside.name in caplog.text
    assert "warning: optuna.journal ended in a record cut off" in capsys.readouterr().err
    reread = optuna.load_study(study_name="s", storage=open_storage(str(journal)).storage)
    assert [trial.state for trial in reread.trials] == [optuna.trial.TrialState.COMPLETE] * 5


def test_a_whole_journal_is_left_as_it_is(workdir: Path) -> None:
    journal = workdir / "optuna.journal"
    _study_with_trials(journal, 2)
    before = journal.read_bytes()
    open_storage(str(journal))
    assert journal.read_bytes() == before and not list(workdir.glob("*.cut-off-*"))


def test_a_last_line_that_is_no_record_is_refused_in_one_line(workdir: Path) -> None:
    journal = workdir / "optuna.journal"
    _study_with_trials(journal, 1)
    with journal.open("ab") as file:
        file.write(CUT_OFF + b'{"op_code":5}\n')  # a record glued onto a cut-off one
    with pytest.raises(ConvtuneError, match="ends in a line that is no journal record") as caught:
        open_storage(str(journal))
    assert "\n" not in str(caught.value) and str(journal) in str(caught.value)
