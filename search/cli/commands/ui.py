"""Start the MLflow UI on this project's tracking store (mlflow.yml) to compare trials; Ctrl-C stops it.

Binds 127.0.0.1 by default: only this machine can open it. To share it on a network, pass
--host 0.0.0.0 and restrict who may reach it (see the warning it prints).

Examples:
  convtune ui
  convtune ui --port 5001
  convtune ui --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import ConfigError, ConvtuneError
from search.parallel.stop_flag import interrupt_on

if TYPE_CHECKING:
    from search.tracking.tracker import Tracker

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
START_TIMEOUT = 120.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str:
    return (
        f"warning: --host {host} exposes the MLflow UI, and every run, parameter and artifact in it, "
        f"to anyone who can reach this machine on port {port}; MLflow has no login by default.\n"
        "  restrict it: bind 127.0.0.1 and use an SSH tunnel (ssh -L 5000:127.0.0.1:5000 host), or run\n"
        f"  mlflow server --host {host} --allowed-hosts <your.host.name> --app-name basic-auth "
        "(MLflow's user/password login) behind a firewall."
    )


def browser_host(host: str) -> str:
    """The address a browser on this machine uses for a bind address (0.0.0.0 is not one)."""
    if host in ("0.0.0.0", "::", ""):
        return DEFAULT_HOST
    return f"[{host}]" if ":" in host else host


def server_command(
    tracking_uri: str, registry_uri: str, artifact_root: str, host: str, port: int
) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    program = [str(mlflow)] if mlflow.is_file() else [sys.executable, "-m", "mlflow"]
    return [
        *program,
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--registry-store-uri",
        registry_uri,
        "--default-artifact-root",
        artifact_root,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def check_port_free(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be in 1..65535, but got {port}.")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}); pass another --port, "
                "or stop what is using it."
            ) from None


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> bool:
    """True once `url/health` answers; False if the server exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def experiment_links(tracker: Tracker, url: str, limit: int = 10) -> list[str]:
    """Deep links to the studies' trials in the training view (not MLflow's GenAI view), newest first.

    A study that `convtune tune` tagged opens on its saved view: sorted by the metric, with the metric
    and the searched params as columns (search.tracking.ui_links).
    """
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.tracking.ui_links import study_link

    return [f"  {name}: {study_link(url, eid, tags)}" for name, eid, tags in tracker.last_experiments(limit)]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(args: argparse.Namespace) -> int:
    # lazy: `convtune --help` imports every command module (search/cli/commands/__init__.py)
    from search.tracking import load_settings
    from search.tracking.settings import DEFAULT_ARTIFACTS
    from search.tracking.tracker import Tracker

    settings = load_settings()
    if settings.is_server:
        print(f"the tracking store is already an MLflow server: open {settings.tracking_uri}")
        return 0
    tracker = Tracker(settings)
    tracker.check_reachable()  # creates the local store's folder, fails early if unreachable
    check_port_free(args.host, args.port)
    if not is_loopback(args.host):
        print(exposure_warning(args.host, args.port), file=sys.stderr)
    url = f"http://{browser_host(args.host)}:{args.port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    artifact_root = settings.artifact_location or str(Path(DEFAULT_ARTIFACTS).resolve())
    command = server_command(
        settings.tracking_uri, settings.registry_uri, artifact_root, args.host, args.port
    )
    process = subprocess.Popen(command, env=env)
    try:
        # Ctrl-C and SIGTERM both stop the server, even where a shell started us with SIGINT ignored
        with interrupt_on(signal.SIGINT, signal.SIGTERM):
            if not wait_until_up(url, process):
                raise ConvtuneError(
                    f"the MLflow server did not start (exit status {process.poll()}); see its messages above."
                )
            links = experiment_links(tracker, url)
            print(f"MLflow UI on {url}  (tracking store {settings.tracking_uri})", flush=True)
            print("\n".join(["studies:", *links]) if links else "no studies yet: run `convtune tune EXP`.")
            print("press Ctrl-C to stop.", flush=True)
            process.wait()
        if process.returncode not in (0, -signal.SIGINT, -signal.SIGTERM):
            raise ConvtuneError(f"the MLflow server stopped with exit status {process.returncode}.")
    except KeyboardInterrupt:
        print("stopping the MLflow UI.", flush=True)
    finally:
        stop(process)
    return 0
