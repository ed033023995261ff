"""Whatever escapes a command: one line, exit 1 (130 on Ctrl-C), a log with the traceback, nothing RUNNING."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from search.parallel import open_work
from search.study.storage import open_storage
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import CliResult, run_cli
from tests.helpers.parallel_helpers import mlflow_client


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


def _interrupt(*_args: Any, **_kwargs: Any) -> Any:
    raise KeyboardInterrupt


def _fail_telling_complete(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: Any = None
) -> Any:
    """The storage refuses the trial's result: the trial was claimed but never told."""
    raise OSError("injected: the storage refused the write")


INJECTIONS: dict[str, tuple[str, Callable[..., Any]]] = {
    "before the first trial": ("search.study.runner.run_worker", _boom),
    "inside a trial": ("search.study.trial_loop.tell", _fail_telling_complete),
    "in the study plots at the end": ("search.study.runner.log_study_plots", _boom),
}


def _tune(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> CliResult:
    raw = tiny_experiment(search__n_trials=1, trainer__max_epochs=1)
    path = write_experiment(workdir, raw)
    return run_cli(["tune", str(path), "--quiet", "--storage", "journal.log", *extra], capsys)


def _running_trials() -> list[int]:
    study = optuna.load_study(study_name="tiny", storage=open_storage("journal.log").storage)
    return [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]


def _running_mlflow_runs() -> list[str]:
    client = mlflow_client()
    experiment = client.get_experiment_by_name("tiny")
    if experiment is None:
        return []
    return [
        r.info.run_name for r in client.search_runs([experiment.experiment_id]) if r.info.status == "RUNNING"
    ]


@pytest.mark.parametrize("where", list(INJECTIONS))
def test_an_unexpected_error_is_one_line_a_log_and_no_running_trial(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target, replacement = INJECTIONS[where]
    monkeypatch.setattr(target, replacement)
    result = _tune(workdir, capsys)
    assert result.code == 1
    line = result.one_line_error()
    assert line.startswith("convtune tune: error: ") and "injected" in line
    logs = sorted((workdir / ".convtune" / "logs").glob("*.log"))
    assert len(logs) == 1 and str(logs[0].relative_to(workdir)) in line and "--debug" in line
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "injected" in text
    assert _running_trials() == []
    assert open_work.still_open() == []
    assert _running_mlflow_runs() == []


def test_debug_prints_the_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("search.study.runner.run_worker", _boom)
    result = _tune(workdir, capsys, "--debug")
    assert result.code == 1
    assert (
        "Traceback (most recent call last)" in result.err and "RuntimeError: injected failure" in result.err
    )
    assert result.err.strip().splitlines()[-1].startswith("convtune tune: error: ")


@pytest.mark.parametrize(
    "target",
    ["search.study.objective.Objective.__call__", "search.study.runner.log_study_plots"],
    ids=["inside a trial", "in the study plots"],
)
def test_ctrl_c_is_exit_130_and_leaves_nothing_running(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setattr(target, _interrupt)
    result = _tune(workdir, capsys)
    assert result.code == 130
    assert "interrupted" in result.one_line_error()
    assert _running_trials() == []
    assert open_work.still_open() == []
    assert _running_mlflow_runs() == []


def test_a_successful_study_leaves_nothing_registered(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _tune(workdir, capsys)
    assert result.code == 0, result.err
    assert open_work.still_open() == []
    assert _running_trials() == [] and _running_mlflow_runs() == []
