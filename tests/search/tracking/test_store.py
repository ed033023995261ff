"""`search.tracking.store`: one client to the MLflow store; an unreachable one is one line, at once; four
worker processes writing to one SQLite store lose nothing ("database is locked" is waited out)."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from search.cli.main import main
from search.errors import ConvtuneError
from search.parallel import open_work
from search.tracking.settings import TrackingSettings, load_settings
from search.tracking.store import TrackingStore
from search.tracking.tracker import Tracker
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, a firewall that drops)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _open_fresh_store(settings: dict[str, str], start: Any, experiment: str) -> None:
    start.wait(timeout=60)
    store = TrackingStore(TrackingSettings(**settings, source="test"))
    store.experiment_id(experiment)


def test_commands_starting_at_once_on_a_fresh_sqlite_store_all_create_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    settings = {"tracking_uri": uri, "registry_uri": uri, "artifact_location": str(tmp_path / "art")}
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=_open_fresh_store, args=(settings, start, f"study-{n}")) for n in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {f"study-{n}" for n in range(4)} <= names


@pytest.mark.parametrize("kind", ["nothing listening", "never answers"])
def test_an_unreachable_tracking_server_is_one_line_within_ten_seconds_before_anything_is_written(
    kind: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    silent_server: int,
) -> None:
    port = _closed_port() if kind == "nothing listening" else silent_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    path = write_experiment(workdir, tiny_experiment())
    started = time.monotonic()
    code = main(["tune", str(path), "--quiet"])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert code == 1 and elapsed < 10, (code, elapsed, err)
    assert err.count("\n") == 0 and f"http://127.0.0.1:{port} is unreachable" in err
    assert "MLFLOW_TRACKING_URI" in err
    assert not (workdir / ".convtune" / "optuna.journal").exists()


def test_an_unreachable_store_from_mlflow_yml_names_that_file_as_the_fix(workdir: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    store = TrackingStore(TrackingSettings(uri, uri, source=str(workdir / "mlflow.yml")))
    with pytest.raises(ConvtuneError) as raised:
        store.check_reachable()
    message = str(raised.value)
    assert f"fix tracking_uri in {workdir / 'mlflow.yml'}" in message and message.count("\n") == 0


def test_runs_hold_params_metrics_tags_text_and_a_checkpoint(workdir: Path) -> None:
    store = TrackingStore(load_settings())
    client = mlflow_client()
    run_id = str(client.create_run(store.experiment_id("held")).info.run_id)
    assert store.experiment_id("held") == client.get_experiment_by_name("held").experiment_id
    store.log_params(run_id, {"optim.lr": 0.01, "long": "x" * 7000})
    store.log_metrics(run_id, {"objective": 0.5})
    for epoch in range(3):
        store.log_epoch(run_id, {"val/acc": epoch / 10}, step=epoch)
    store.flush(run_id)
    store.set_tags(run_id, {"convtune.note": "y" * 6000})
    store.log_text(run_id, "a: 1\n", "config.yaml")
    run = client.get_run(run_id)
    assert run.data.params["optim.lr"] == "0.01" and len(run.data.params["long"]) == 6000
    assert run.data.metrics["objective"] == 0.5 and len(run.data.tags["convtune.note"]) == 5000
    assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == [0, 1, 2]
    assert store.read_text(run_id, "config.yaml") == "a: 1\n"
    assert store.read_text(run_id, "missing.txt") is None and store.read_text(None, "config.yaml") is None
    checkpoint = workdir / "last.ckpt"
    checkpoint.write_bytes(b"weights")
    assert store.download_checkpoint(run_id, "last.ckpt", workdir / "down") is None
    store.upload_checkpoint(run_id, checkpoint)
    downloaded = store.download_checkpoint(run_id, "last.ckpt", workdir / "down")
    assert downloaded is not None and downloaded.read_bytes() == b"weights"
    store.delete_checkpoint(run_id)
    assert store.download_checkpoint(run_id, "last.ckpt", workdir / "again") is None


def test_experiments_are_described_and_listed_newest_first(workdir: Path) -> None:
    store = TrackingStore(load_settings())
    store.describe_study("first", {"convtune.metric": "val/acc"})
    store.experiment_id("second")
    names = [name for name, _, _ in store.last_experiments(5)]
    assert names == ["second", "first"]
    ((_, _, tags),) = [e for e in store.last_experiments(5) if e[0] == "first"]
    assert tags["convtune.metric"] == "val/acc"
    assert store.artifact_location("first").endswith("/mlartifacts/first")


def _hammer(settings: dict[str, str], run_id: str, worker: int, count: int) -> None:
    from search.tracking import TrackingSettings

    tracker = Tracker(TrackingSettings(**settings))
    for step in range(count):
        tracker.log_metrics(run_id, {f"w{worker}": float(step)}, step=step)
        tracker.set_tags(run_id, {f"w{worker}.last": str(step)})


@pytest.fixture
def own_open_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The study run opened below stays open (nothing ends it): it is kept out of the process's registry,
    which other tests expect empty."""
    monkeypatch.setattr(open_work, "_open", {})


@pytest.mark.usefixtures("own_open_work")
def test_four_processes_writing_to_the_sqlite_tracking_store_lose_nothing(workdir: Path) -> None:
    tracker = Tracker(load_settings())
    run_id = tracker.study_run("hammer")
    settings = {
        k: getattr(tracker.settings, k) for k in ("tracking_uri", "registry_uri", "artifact_location")
    }
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_hammer, args=(settings, run_id, w, 40)) for w in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    client = mlflow_client()
    for worker in range(4):
        assert len(client.get_metric_history(run_id, f"w{worker}")) == 40
        assert client.get_run(run_id).data.tags[f"w{worker}.last"] == "39"
