"""`search.cli.progress`: the live panel of a study and the table of its best trials."""

from __future__ import annotations

import io

import optuna
from rich.console import Console

from search.cli.progress import (
    StudyProgress,
    format_params,
    format_values,
    params_cell,
    trial_note,
    trials_table,
)


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    distribution = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
    for lr, values in ((0.01, [0.8, 2130]), (0.02, [0.95, 4000])):
        study.add_trial(
            optuna.trial.create_trial(
                params={"optim.lr": lr}, distributions={"optim.lr": distribution}, values=values
            )
        )
    failed = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"error": "boom"})
    study.add_trial(failed)
    return study


def test_params_and_values_on_one_line() -> None:
    assert format_params({"optim.lr": 0.0012345, "model.channels": [8, 16]}) == (
        "optim.lr=0.00123 model.channels=[8, 16]"
    )
    trial = _study().trials[0]
    assert format_values(trial) == "0.8000 / 2,130"
    assert format_values(_study().trials[2]) == ""


def test_the_table_lists_the_best_first_and_says_why_a_trial_failed() -> None:
    table = trials_table(_study(), title="top")
    numbers, states, *_, params = (list(column.cells) for column in table.columns)
    assert numbers == ["1", "0", "2"] and states == ["COMPLETE", "COMPLETE", "FAIL"]
    assert [str(cell) for cell in params] == ["optim.lr=0.02", "optim.lr=0.01", "  [boom]"]
    console = Console(file=io.StringIO(), width=120)
    console.print(table)
    assert "[boom]" in console.file.getvalue()  # a lowercase note in brackets is not read as markup


def test_the_note_is_the_one_convtune_status_shows() -> None:
    """`tune`'s table and `convtune status` say the same about a trial: a died trial's retry too."""
    died = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"died": "its worker died (signal 9)", "retry_of": 4, "retry_count": 2},
    )
    assert trial_note(died) == "retry 2 of trial 4; its worker died (signal 9)"
    interrupted = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={"interrupted": "Ctrl-C"}
    )
    assert trial_note(interrupted) == "Ctrl-C"
    assert trial_note(_study().trials[0]) == ""


def test_a_long_note_is_cut_with_an_ellipsis() -> None:
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED)
    assert str(params_cell(trial, "x" * 30, 10)) == f"  [{'x' * 9}…]"
    assert str(params_cell(trial, "short", 10)) == "  [short]"


def test_the_panel_counts_the_trials_and_follows_the_running_one() -> None:
    console = Console(file=io.StringIO(), width=200)
    with StudyProgress("tiny", 4, "val/acc", console) as progress:
        progress.update_study(_study())
        progress.start_trial(3, epochs=2, batches=5)
        progress.advance("loss 0.3")
        progress.epoch_done("val/acc 0.9")
    assert progress.summary.plain.startswith("study tiny: 2/4 finished · 2 complete · 0 pruned · 1 failed")
    assert "best val/acc 0.9500 (trial 1)" in progress.summary.plain
    task = progress.bars.tasks[0]
    assert (task.description, task.total, task.completed) == ("trial 3", 10, 1)
    assert task.fields["status"] == "val/acc 0.9"
