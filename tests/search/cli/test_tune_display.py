"""What `convtune tune` prints: notes, the live panel's summary, crashed workers, the end."""

from __future__ import annotations

import io

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from search.cli.tune_display import TuneDisplay, compare_line
from search.study.observer import StudyEnd
from search.tracking import vocabulary as v


def _display() -> tuple[TuneDisplay, io.StringIO]:
    printed = io.StringIO()
    return TuneDisplay(Console(file=printed, width=200)), printed


def _study() -> optuna.Study:
    study = optuna.create_study(study_name="shown", direction="maximize")
    lr = FloatDistribution(1e-3, 1e-2, log=True)
    study.add_trial(create_trial(params={"optim.lr": 2e-3}, distributions={"optim.lr": lr}, value=0.91))
    return study


def test_notes_and_the_warm_start_line_come_first() -> None:
    display, printed = _display()
    display.study_ready(["3 files skipped"], "warm start from study x: 2 finished trials added as priors")
    assert printed.getvalue().splitlines() == [
        "note: 3 files skipped",
        "warm start from study x: 2 finished trials added as priors",
    ]


def test_the_end_shows_the_best_trials_and_where_to_compare_them() -> None:
    display, printed = _display()
    display.study_finished(StudyEnd(_study(), "failures", 3, "http://127.0.0.1:5000/#/experiments/1", False))
    text = printed.getvalue()
    assert "study shown: top trials" in text and "0.9100" in text and "optim.lr=0.002" in text
    assert "compare the runs: convtune ui, then open http://127.0.0.1:5000/#/experiments/1" in text
    assert "stopped after 3 failed trials; see `convtune status`." in text
    server = StudyEnd(_study(), "n_trials", 0, "https://team/#/experiments/1", True)
    assert compare_line(server) == "compare the runs: open https://team/#/experiments/1"


def test_a_crashed_worker_is_named_with_the_end_of_its_log() -> None:
    display, printed = _display()
    display.workers_crashed(["cpu1 (exit -9, log w/cpu1.log)"], "Traceback [last lines]")
    assert printed.getvalue().splitlines() == [
        "worker cpu1 (exit -9, log w/cpu1.log) ended abnormally; its trial was failed and queued for retry.",
        "Traceback [last lines]",  # printed as is: no markup read into a log
    ]


def test_the_workers_panel_shows_each_workers_running_trial() -> None:
    display, _ = _display()
    study = _study()
    running = study.ask()
    running.set_user_attr(v.ATTR_WORKER, "cpu0")
    running.report(0.5, 1)
    with display.watch_workers(study, 4, "val/acc", ["cpu0", "cpu1"], 3) as view:
        view.update_study(study)
        tasks = {task.description.strip(): task for task in view.progress.bars.tasks}  # type: ignore[attr-defined]
    assert tasks["cpu0"].fields["status"] == "trial 1 epoch 1/3 val/acc 0.5000"
    assert tasks["cpu0"].completed == 1
    assert tasks["cpu1"].fields["status"] == "waiting"
    assert "study shown: 1/4 finished" in view.progress.summary.plain  # type: ignore[attr-defined]
    assert study.trials[1].state == TrialState.RUNNING


def test_a_workers_time_is_that_of_its_current_trial() -> None:
    """rich freezes a task's elapsed time once it first reaches its total; a worker's line restarts
    its clock for each new trial and for each wait instead."""
    display, _ = _display()
    study = _study()
    first = study.ask()
    first.set_user_attr(v.ATTR_WORKER, "cpu0")
    for epoch in (1, 2):
        first.report(0.5, epoch)
    with display.watch_workers(study, 4, "val/acc", ["cpu0"], 2) as view:
        view.update_study(study)
        task = view.progress.bars.tasks[0]  # type: ignore[attr-defined]
        started = task.start_time
        assert task.finished  # the first trial's last epoch
        view.update_study(study)
        assert task.start_time == started  # the same trial: its clock runs on
        study.tell(first, 0.5)
        view.update_study(study)
        assert task.fields["status"] == "waiting" and not task.finished and task.start_time > started
        waited = task.start_time
        second = study.ask()
        second.set_user_attr(v.ATTR_WORKER, "cpu0")
        view.update_study(study)
        assert task.fields["status"] == "trial 2 epoch 0/2" and task.start_time > waited
