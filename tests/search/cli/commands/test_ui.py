"""`convtune ui`: the MLflow server's command line, and the address a browser opens."""

from __future__ import annotations

import subprocess
import sys

from search.cli.commands.ui import DEFAULT_HOST, browser_host, server_command, wait_until_up


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
