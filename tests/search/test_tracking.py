"""Where runs, models and artifacts go; how the tracker waits out a busy or absent store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.cli.main import main
from search.tracking.buffer import MetricsBuffer
from search.tracking.resilience import ResilientClient, call_with_retry, is_transient
from search.tracking.settings import load_settings, redact
from tests.conftest import tiny_experiment, write_experiment

SERVER = "http://mlflow.example:5000"


def _settings_file(folder: Path, text: str) -> None:
    (folder / "mlflow.yml").write_text(text)


def test_mlflow_tracking_uri_wins_and_takes_the_registry_along(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_file(workdir, "tracking_uri: sqlite:///local.db\nregistry_uri: sqlite:///registry.db\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)
    settings = load_settings()
    assert settings.tracking_uri == SERVER and settings.registry_uri == SERVER
    assert settings.artifact_location is None, "a server decides where artifacts go"
    assert settings.is_server and settings.source == "$MLFLOW_TRACKING_URI"


def test_mlflow_registry_uri_wins_over_everything(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://registry.example")
    assert load_settings().registry_uri == "http://registry.example"


def test_without_the_environment_mlflow_yml_names_all_three(workdir: Path) -> None:
    _settings_file(
        workdir,
        "tracking_uri: sqlite:///runs.db\nregistry_uri: sqlite:///models.db\nartifact_location: art\n",
    )
    settings = load_settings()
    assert settings.tracking_uri == f"sqlite:///{workdir.resolve() / 'runs.db'}"
    assert settings.registry_uri == f"sqlite:///{workdir.resolve() / 'models.db'}"
    assert settings.artifact_location == (workdir / "art").resolve().as_uri()


def test_the_registry_follows_the_tracking_store_unless_named(workdir: Path) -> None:
    _settings_file(workdir, "tracking_uri: sqlite:///runs.db\n")
    settings = load_settings()
    assert settings.registry_uri == settings.tracking_uri


def test_check_prints_where_runs_models_and_artifacts_go(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"runs      -> sqlite:///{workdir.resolve() / 'mlflow.db'}" in out
    assert f"artifacts -> {(workdir / 'mlartifacts').resolve().as_uri()}" in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:secret@mlflow.example:5000")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "runs      -> http://alice:***@mlflow.example:5000 (from $MLFLOW_TRACKING_URI)" in out
    assert "models    -> http://alice:***@mlflow.example:5000" in out and "secret" not in out
    assert "artifacts -> the tracking server's artifact store" in out


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://bob:pw@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert redact("http://host:5000") == "http://host:5000"


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


class _Flaky:
    """Refuses connections `failures` times, then works; records what it stored."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: list[tuple[str, list[int]]] = []

    def log_batch(self, run_id: str, metrics: list[int]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("HTTPConnectionPool: Max retries exceeded (Connection refused)")
        self.stored.append((run_id, metrics))


def test_queued_epochs_are_written_in_order_after_the_store_comes_back() -> None:
    flaky = _Flaky(failures=3)
    client = ResilientClient(flaky, budget=30)
    buffer = MetricsBuffer(lambda run_id, batch: client.log_batch(run_id, list(batch)))
    started = time.monotonic()
    for epoch in range(5):
        buffer.put("run", [epoch])
    assert time.monotonic() - started < 0.5, "putting never waits for the store"
    assert buffer.flush("run", timeout=30) is None
    assert flaky.stored == [("run", [epoch]) for epoch in range(5)]


def test_a_permanent_error_is_reported_by_flush_and_does_not_block_other_runs() -> None:
    def write(run_id: str, batch: object) -> None:
        if run_id == "deleted":
            raise ValueError("RESOURCE_DOES_NOT_EXIST: run deleted")

    buffer = MetricsBuffer(write)
    buffer.put("deleted", [1])
    buffer.put("alive", [2])
    assert buffer.flush("alive", timeout=10) is None
    assert "RESOURCE_DOES_NOT_EXIST" in (buffer.flush("deleted", timeout=10) or "")


def test_only_outages_and_locks_are_retried() -> None:
    assert is_transient(ConnectionError("Failed to establish a new connection: Connection refused"))
    assert is_transient(RuntimeError("(sqlite3.OperationalError) database is locked"))
    assert not is_transient(RuntimeError("Max retries exceeded (too many 500 error responses)"))
    assert not is_transient(ValueError("INVALID_PARAMETER_VALUE: bad metric"))
    calls = []

    def refuses() -> None:
        calls.append(1)
        raise ConnectionError("Connection refused")

    with pytest.raises(ConnectionError):
        call_with_retry(refuses, budget=0.5)
    assert len(calls) >= 2, "retried within its budget, then gave up"


RACE = (
    "RestException: BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
    "experiment_tags.key, experiment_tags.experiment_id"
)


class RacingClient:
    """Refuses the first write of each experiment tag as a store does when another machine inserted
    the same key a moment before (the server's message, as CI saw it with two machines)."""

    def __init__(self, error: str) -> None:
        self.error = error
        self.tags: dict[str, str] = {}
        self.refused: set[str] = set()

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        if key not in self.refused:
            self.refused.add(key)
            raise RuntimeError(self.error)
        self.tags[key] = value


def test_experiment_tags_written_by_two_machines_at_once_are_retried(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.tracking.tracker import Tracker

    tracker = Tracker(load_settings())
    client = RacingClient(RACE)
    monkeypatch.setattr(tracker, "_client", ResilientClient(client, budget=5))
    monkeypatch.setattr(tracker, "experiment_id", lambda name: "1")
    tracker.describe_study("team", {"a": "1", "b": "2"})
    assert client.tags == {"a": "1", "b": "2"}

    other = RacingClient("INVALID_PARAMETER_VALUE: tag value too long")
    monkeypatch.setattr(tracker, "_client", ResilientClient(other, budget=5))
    with pytest.raises(RuntimeError, match="INVALID_PARAMETER_VALUE"):
        tracker.describe_study("team", {"a": "1"})  # any other refusal is not retried
    assert not is_transient(RuntimeError(RACE)), "a race is retried only for writes that set a key"


def test_digests_tell_different_data_apart_and_the_same_data_alike() -> None:
    import torch

    from search.tracking.datasets import digest_of

    images = torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    same = digest_of(images.clone(), labels.clone())
    assert digest_of(images, labels) == same and len(same) == 16
    changed = images.clone()
    changed[3, 0, 2, 2] ^= 1
    assert digest_of(changed, labels) != same
    assert digest_of(images[:32], labels[:32]) != same


def test_every_trial_logs_its_data_and_system_metrics(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.experiment.spec import validate_experiment
    from search.study.preflight import preflight
    from search.study.runner import TuneOptions, tune
    from tests.helpers.parallel_helpers import mlflow_client, trial_runs

    monkeypatch.setattr("search.tracking.tracker.SYSTEM_METRICS_INTERVAL", 600)  # a trial shorter than one
    spec = validate_experiment(tiny_experiment(search__n_trials=1))
    sizes = preflight(spec)
    tune(spec, TuneOptions(progress=False))
    client = mlflow_client()
    (run,) = trial_runs(client, "tiny")
    inputs = {entry.dataset.name: entry for entry in run.inputs.dataset_inputs}
    assert set(inputs) == {"digits/train", "digits/val"}
    train, val = inputs["digits/train"], inputs["digits/val"]
    assert {tag.value for tag in train.tags} == {"train"} and train.dataset.digest != val.dataset.digest
    assert f'"images": {sizes.train_size}' in train.dataset.profile
    assert f'"images": {sizes.val_size}' in val.dataset.profile
    assert any(key.startswith("system/") for key in run.data.metrics), sorted(run.data.metrics)
