"""`search.parallel.open_work`: what this process must close if it dies, closed newest first."""

from __future__ import annotations

import pytest

from search.parallel import open_work


@pytest.fixture(autouse=True)
def nothing_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's registry only: runs that other tests left open are not closed here."""
    monkeypatch.setattr(open_work, "_open", {})


def test_what_closed_normally_is_not_closed_again() -> None:
    closed: list[str] = []
    open_work.opened("run:a", lambda reason: closed.append(f"a {reason}"))
    open_work.opened("run:b", lambda reason: closed.append(f"b {reason}"))
    open_work.closed("run:a")
    assert open_work.still_open() == ["run:b"]
    assert open_work.close_all("crashed") == ["run:b"]
    assert closed == ["b crashed"] and open_work.still_open() == []


def test_trials_close_before_the_runs_that_hold_them_and_a_failing_closer_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order: list[str] = []

    def broken(_reason: str) -> None:
        raise RuntimeError("store down")

    open_work.opened("mlflow-run:study", order.append)
    open_work.opened("mlflow-run:trial", broken)
    open_work.opened("optuna-trial:tiny:0", lambda reason: order.append(f"trial {reason}"))
    assert open_work.close_all("interrupted") == ["optuna-trial:tiny:0", "mlflow-run:study"]
    assert order == ["trial interrupted", "interrupted"]
    assert "could not close mlflow-run:trial" in caplog.text and "store down" in caplog.text
