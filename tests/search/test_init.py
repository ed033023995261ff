"""`search/__init__.py`: the process-wide environment defaults, set once by importing any `search` module."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from search import ENV_DEFAULTS
from tests.conftest import REPO

PROBE = """
import json, os, sys
import {module}
from search import ENV_DEFAULTS
from search.parallel.plan import WorkerSlot
print(json.dumps({{
    "here": {{name: os.environ.get(name) for name in ENV_DEFAULTS}},
    "worker": {{name: WorkerSlot(0, "cpu").env(dict(os.environ)).get(name) for name in ENV_DEFAULTS}},
}}))
"""


def environment_after_import(module: str, **preset: str) -> dict[str, dict[str, str | None]]:
    """The defaults as seen after `import module` in a fresh interpreter started without them, and as a
    forked worker would get them (`search.parallel.worker_start.launch` passes `slot.env(os.environ)`)."""
    env = {name: value for name, value in os.environ.items() if name not in ENV_DEFAULTS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(preset)
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_default_is_set_by_the_lightest_search_import_and_reaches_a_forked_worker() -> None:
    seen = environment_after_import("search.errors")
    assert seen["here"] == ENV_DEFAULTS
    assert seen["worker"] == ENV_DEFAULTS


def test_a_fresh_worker_process_gets_them_before_anything_else() -> None:
    seen = environment_after_import("search.parallel.worker")  # what `python -m search.parallel.worker` runs
    assert seen["here"] == ENV_DEFAULTS


def test_a_value_the_user_set_wins() -> None:
    seen = environment_after_import("search.errors", MLFLOW_DISABLE_TELEMETRY="false", DO_NOT_TRACK="0")
    assert seen["here"]["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert seen["here"]["DO_NOT_TRACK"] == "0"
    assert seen["worker"]["MLFLOW_DISABLE_TELEMETRY"] == "false"


def test_the_defaults_are_the_documented_ones() -> None:
    assert ENV_DEFAULTS["MLFLOW_DISABLE_TELEMETRY"] == "true"  # DESIGN.md: machines may be offline
    assert ENV_DEFAULTS["NO_ALBUMENTATIONS_UPDATE"] == "1"
    assert ENV_DEFAULTS["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert ENV_DEFAULTS["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
