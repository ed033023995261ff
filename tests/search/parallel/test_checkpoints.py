"""`search.parallel.checkpoints`: where a trial's checkpoint lives, here and for other machines."""

from __future__ import annotations

from pathlib import Path

from search.parallel.checkpoints import CheckpointStore
from tests.helpers.parallel_helpers import mlflow_client


def test_a_remote_store_keeps_the_checkpoint_in_the_runs_artifacts_for_other_machines(workdir: Path) -> None:
    """Tracking on a team server: each save is uploaded, a machine without the file downloads it, and
    discarding removes the artifact (exercised here on the local store's artifact repository)."""
    from search.tracking import Tracker, load_settings

    tracker = Tracker(load_settings())
    parent = tracker.study_run("tiny")
    run_id = tracker.start_trial(study_name="tiny", parent_run_id=parent, trial_number=0, params={})
    here = CheckpointStore(workdir / "here", tracker, remote=True)
    here.path(run_id).parent.mkdir(parents=True)
    here.path(run_id).write_bytes(b"epoch 1")
    here.saved(run_id, here.path(run_id))
    here.path(run_id).write_bytes(b"epoch 2")
    here.saved(run_id, here.path(run_id))  # replaces the previous epoch's artifact
    elsewhere = CheckpointStore(workdir / "elsewhere", tracker, remote=True)
    fetched = elsewhere.fetch(run_id)
    assert fetched == elsewhere.path(run_id) and fetched.read_bytes() == b"epoch 2"
    listed = mlflow_client().list_artifacts(run_id, "checkpoint")
    assert [Path(f.path).name for f in listed] == [f"{run_id}.ckpt"]
    elsewhere.discard(run_id)
    assert mlflow_client().list_artifacts(run_id, "checkpoint") == []
    assert not elsewhere.path(run_id).exists()
    assert CheckpointStore(workdir / "third", tracker, remote=True).fetch(run_id) is None
