"""`search.tracking.tracker`: a study's run, its trials' runs and how each ends, in a local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.parallel import open_work
from search.tracking import vocabulary as v
from search.tracking.settings import load_settings
from search.tracking.tracker import RunProgress, Tracker
from tests.helpers.parallel_helpers import mlflow_client


@pytest.fixture
def tracker(workdir: Path) -> Tracker:
    return Tracker(load_settings())


def _trial(tracker: Tracker, parent: str, number: int) -> str:
    return tracker.start_trial(
        study_name="study", parent_run_id=parent, trial_number=number, params={"optim.lr": 0.01}
    )


def test_trials_nest_under_the_study_run_and_end_as_their_optuna_state(tracker: Tracker) -> None:
    parent = tracker.study_run("study")
    assert tracker.study_run("study", parent) == parent  # a resumed study keeps its run
    complete, pruned, failed = (_trial(tracker, parent, number) for number in range(3))
    client = mlflow_client()
    run = client.get_run(complete)
    assert run.info.run_name == "trial-0000" and run.data.params == {"optim.lr": "0.01"}
    tags = run.data.tags
    assert tags[v.TAG_PARENT_RUN] == parent and tags[v.TAG_STATE] == "RUNNING"
    assert (tags[v.TAG_STUDY], tags[v.TAG_TRIAL_NUMBER], tags[v.TAG_ROLE]) == ("study", "0", v.ROLE_TRIAL)
    assert f"mlflow-run:{complete}" in open_work.still_open()
    tracker.finish(complete, "COMPLETE")
    tracker.finish(pruned, "PRUNED")
    tracker.finish(failed, "FAIL", error="Traceback ...\nValueError: the last line")
    assert f"mlflow-run:{complete}" not in open_work.still_open()
    assert [tracker.run_status(r) for r in (complete, pruned, failed)] == ["FINISHED", "FINISHED", "FAILED"]
    assert tracker.run_tag(pruned, v.TAG_STATE) == "PRUNED", "a pruned trial is no crash"
    assert tracker.run_tag(failed, v.TAG_ERROR) == "ValueError: the last line"
    assert tracker.read_text(failed, "error.txt") == "Traceback ...\nValueError: the last line"
    tracker.end_study(parent, "n_trials")
    assert tracker.run_status(parent) == "FINISHED" and tracker.run_tag(parent, v.TAG_STATUS) == "n_trials"


def test_a_dead_trials_run_is_closed_and_a_resumed_one_reopened(tracker: Tracker) -> None:
    parent = tracker.study_run("study")
    run_id = _trial(tracker, parent, 4)
    tracker.close_trial_run("study", 4, None, "worker died", status="KILLED")  # found by its tags
    assert tracker.run_status(run_id) == "KILLED"
    assert tracker.run_tag(run_id, v.TAG_STATE) == "FAIL"
    assert tracker.run_tag(run_id, v.TAG_ERROR) == "worker died"
    tracker.resume_trial(run_id, trial_number=6, epochs=3)
    assert tracker.run_status(run_id) == "RUNNING" and tracker.run_tag(run_id, v.TAG_ERROR) is None
    assert tracker.run_tag(run_id, v.TAG_TRIALS) == "4,6"
    assert tracker.run_tag(run_id, v.TAG_RESUMED) == "after epoch 3 (trial 4 -> trial 6)"
    tracker.interrupt(run_id, "interrupted by SIGTERM")
    assert tracker.run_status(run_id) == "KILLED" and tracker.run_tag(run_id, v.TAG_STATE) == "FAIL"
    assert tracker.run_tag("no-such-run", v.TAG_STATE) is None and tracker.run_tag(None, v.TAG_STATE) is None


def test_reproduction_and_ensemble_runs_are_named_tagged_and_linked(tracker: Tracker) -> None:
    ensemble = tracker.start_ensemble(study_name="study", trial_numbers=[3, 1], tags={})
    member = tracker.start_reproduction(
        study_name="study", trial_number=3, original_run_id="abc", tags={v.TAG_PARENT_RUN: ensemble}
    )
    tracker.link_ensemble_members(ensemble, [member])
    client = mlflow_client()
    assert client.get_run(ensemble).info.run_name == "ensemble-top2"
    assert client.get_run(member).info.run_name == "reproduce-trial-0003"
    assert tracker.run_tag(member, v.TAG_REPRODUCTION_OF) == "abc"
    assert tracker.run_tag(ensemble, v.TAG_ENSEMBLE_TRIALS) == "3,1"
    assert tracker.run_tag(ensemble, f"{v.TAG_ENSEMBLE_MEMBER_PREFIX}0") == member
    tracker.end_run(member, error=KeyboardInterrupt())
    tracker.end_run(ensemble, error=ValueError("no"))
    assert tracker.run_status(member) == "KILLED" and tracker.run_status(ensemble) == "FAILED"
    assert tracker.run_tag(ensemble, v.TAG_ERROR) == "ValueError: no"
    exited = tracker.start_reproduction(study_name="study", trial_number=1, original_run_id="def", tags={})
    tracker.end_run(exited, error=SystemExit(1))  # Lightning's exit after a Ctrl-C in a member's process
    assert tracker.run_status(exited) == "KILLED"


def test_a_runs_training_progress_is_its_logged_epochs_and_whether_it_runs(tracker: Tracker) -> None:
    run_id = tracker.start_reproduction(study_name="study", trial_number=2, original_run_id="abc", tags={})
    assert tracker.training_progress(run_id, "val/acc") == RunProgress(running=True, epochs=0, last=None)
    client = mlflow_client()
    for epoch, value in ((1, 0.82), (0, 0.71)):  # logged out of order: the last epoch's value counts
        client.log_metric(run_id, "val/acc", value, step=epoch)
    assert tracker.training_progress(run_id, "val/acc") == RunProgress(running=True, epochs=2, last=0.82)
    tracker.set_tags(run_id, {v.TAG_EPOCHS_REPLANNED: "24"})  # a deadline lengthened it
    assert tracker.training_progress(run_id, "val/acc").replanned == 24
    tracker.end_run(run_id)
    assert not tracker.training_progress(run_id, "val/acc").running
