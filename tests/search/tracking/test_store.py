"""`search.tracking.store`: one client to the MLflow store; an unreachable one is one line, at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.cli.main import main
from tests.conftest import tiny_experiment, write_experiment


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
