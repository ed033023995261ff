"""`convtune status`: the study's trials, its counts and its best trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.cli.main import main
from search.study.storage import open_storage
from tests.conftest import tiny_experiment, write_experiment


def test_the_trials_the_counts_and_the_best(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_experiment(workdir, tiny_experiment())
    study = optuna.create_study(study_name="tiny", storage=open_storage(None).storage, direction="maximize")
    distribution = optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)
    for value in (0.5, 0.9):
        study.add_trial(
            optuna.trial.create_trial(
                params={"optim.lr": 3e-3}, distributions={"optim.lr": distribution}, value=value,
                user_attrs={"device": "cpu:0", "mlflow_run_id": f"run{value}"},
            )
        )  # fmt: skip
    assert main(["status", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "study tiny" in out and "COMPLETE" in out and "optim.lr=0.003" in out and "cpu:0" in out
    assert "2 complete" in out
    assert "best: trial 1 val/acc=0.9000 (mlflow run run0.9)" in out


def test_an_unknown_study_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_experiment(workdir, tiny_experiment())
    code = main(["status", str(path), "--study", "nothing-here"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "nothing-here" in err


def test_a_trial_never_trained_says_why_and_is_counted(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    study = optuna.create_study(study_name="tiny", storage=open_storage(None).storage, direction="maximize")
    reason = "cost/params = 21,594 is over cost/params <= 17,670"
    study.add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"over_budget": reason})
    )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    assert main(["status", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"[{reason}]" in out  # rich would drop a lowercase bracketed note read as markup
    assert "2 pruned (1 over budget: never trained)" in out
