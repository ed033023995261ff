"""`convtune ui`: the MLflow server's command line, the address a browser opens, a busy port refused
before anything starts, and a warning when it listens off loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli.commands.ui import (
    DEFAULT_HOST,
    browser_host,
    exposure_warning,
    is_loopback,
    server_command,
    wait_until_up,
)
from search.cli.main import main


def test_a_browser_opens_a_wildcard_bind_on_this_machine() -> None:
    assert browser_host("0.0.0.0") == browser_host("::") == DEFAULT_HOST
    assert browser_host("192.168.1.5") == "192.168.1.5"
    assert browser_host("::1") == "[::1]"


def test_the_server_gets_the_stores_the_bind_address_and_one_worker() -> None:
    command = server_command("sqlite:///mlflow.db", "sqlite:///registry.db", "/tmp/art", "127.0.0.1", 5001)
    assert command[command.index("server") :] == [
        "server",
        "--backend-store-uri", "sqlite:///mlflow.db",
        "--registry-store-uri", "sqlite:///registry.db",
        "--default-artifact-root", "/tmp/art",
        "--host", "127.0.0.1",
        "--port", "5001",
        "--workers", "1",
    ]  # fmt: skip


def test_a_server_that_exits_is_not_waited_for() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    assert not wait_until_up("http://127.0.0.1:9", process, timeout=30)


def test_ui_refuses_a_busy_port_before_starting_anything(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_ui_warns_about_exposure_only_off_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    warning = exposure_warning("0.0.0.0", 5000)
    assert "--allowed-hosts" in warning and "basic-auth" in warning
