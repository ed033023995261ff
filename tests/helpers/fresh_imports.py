"""What a fresh interpreter imports while it runs some code: the top-level packages it loaded."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

_REPORT = (
    "\nimport json as _json, sys as _sys\nprint(_json.dumps(sorted({m.split('.')[0] for m in _sys.modules})))"
)


def imported_packages(code: str) -> set[str]:
    """The top-level package names in `sys.modules` after `code` runs in a new `python -c`."""
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))
