"""`lightning_modules/__init__.py`: importing the package turns off albumentations' update check over the
network, unless the user set it otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = "import os, lightning_modules; print(os.environ.get('NO_ALBUMENTATIONS_UPDATE'))"


@pytest.mark.parametrize(("preset", "seen"), [(None, "1"), ("0", "0")])
def test_importing_it_turns_off_the_update_check_unless_the_user_set_it(
    preset: str | None, seen: str
) -> None:
    env = {name: value for name, value in os.environ.items() if name != "NO_ALBUMENTATIONS_UPDATE"}
    if preset is not None:
        env["NO_ALBUMENTATIONS_UPDATE"] = preset
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == seen
