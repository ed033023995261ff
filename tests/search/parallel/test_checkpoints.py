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


def test_discarding_removes_the_partial_files_of_writes_a_kill_cut_short(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.folder.mkdir(parents=True, exist_ok=True)
    store.path("abc123").write_bytes(b"epoch 3")
    store.saved("abc123", store.path("abc123"), epochs=3)
    # a worker killed between writing and renaming leaves these behind (its pid in the name)
    cut_short = [tmp_path / ".abc123.epochs.4242.partial", tmp_path / ".abc123.ckpt.4242.partial"]
    other = tmp_path / ".def456.ckpt.4242.partial"  # another run's, still being written
    for path in [*cut_short, other]:
        path.write_text("partial")
    store.discard("abc123")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]
