"""End to end: a study made here, `convtune ui` on a free loopback port, headless Chromium on it.

Needs Debian's `chromium` (`make system-deps`) and the `playwright` Python package (the dev extra);
Playwright drives the system browser, nothing is downloaded. Skipped, with the reason, without them.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from search.runner import TuneOptions, tune
from search.spec import validate_experiment
from tests.conftest import tiny_experiment

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START = 300.0  # mlflow server imports slowly on a busy 2-core machine
UI_TIMEOUT_MS = 90_000
BROWSER_ATTEMPTS = 2  # headless Chromium has crashed mid-test in CI (Debian bug 1072299)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"{CHROMIUM} not found: install chromium (apt-get install chromium, make system-deps)",
    ),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_ui(folder: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """`convtune ui` as a user runs it; returns the process and the experiment's deep link."""
    convtune = Path(sys.executable).with_name("convtune")
    command = [str(convtune)] if convtune.is_file() else [sys.executable, "-m", "search.cli"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [*command, "ui", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + SERVER_START
    while time.monotonic() < deadline and process.poll() is None:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if "press Ctrl-C" in seen[-1]:
            link = next(
                m.group(0) for line in seen if (m := re.search(r"http://\S+/#/experiments/\d+/runs", line))
            )
            return process, link
    process.kill()
    raise AssertionError("convtune ui did not come up:\n" + "".join(seen[-30:]))


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def _check_runs_and_pictures(
    page: Page, link: str, study_name: str, values: dict[str, float | None], shots: Path
) -> None:
    """What a user checks in the UI: every trial with its val/acc, then one trial's pictures."""
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(link)  # the training runs view, not the GenAI overview
    page.get_by_text(study_name, exact=True).last.wait_for()
    assistant = page.locator("button[aria-label='Close']")
    if assistant.count():  # the MLflow Assistant side panel hides the metric columns
        assistant.last.click()
    page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()  # expand
    for name in values:
        page.get_by_role("link", name=name).wait_for()
    page.get_by_test_id("column-selection-dropdown").first.click()
    page.get_by_placeholder("Search columns").fill("val/acc")
    page.get_by_text("val/acc", exact=True).click()
    page.keyboard.press("Escape")
    for name, value in values.items():
        row = page.locator(".ag-row", has=page.get_by_role("link", name=name)).first
        index = row.get_attribute("row-index")
        cell = page.locator(f'.ag-row[row-index="{index}"] [col-id="metrics.`val/acc`"]').first
        assert float(cell.inner_text()) == pytest.approx(value, abs=1e-3), name
    page.screenshot(path=str(shots / "ui-runs.png"))

    page.get_by_role("link", name="trial-0000").click()
    page.get_by_role("tab", name="Artifacts").click()
    for picture in ("filters.png", "feature_maps_block0.png", "confusion_matrix.png", "misclassified.png"):
        page.get_by_text(picture, exact=True).wait_for()
    page.get_by_text("confusion_matrix.png", exact=True).click()
    page.locator('img[alt="confusion_matrix.png"]').wait_for()
    page.screenshot(path=str(shots / "ui-artifacts.png"))


def _chromium_crashed_during(playwright: Playwright, check: Callable[[Page], None], last_try: bool) -> bool:
    """Runs `check` on a fresh headless Chromium; True if the browser or its page crashed first."""
    from playwright.sync_api import Error

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    crashes: list[Page] = []
    page.on("crash", lambda crashed: crashes.append(crashed))
    try:
        check(page)
    except Error:
        if last_try or not (crashes or not browser.is_connected()):
            raise  # a real failure, or Chromium crashed every time
        return True
    finally:
        if browser.is_connected():
            browser.close()
    return False


def test_ui_lists_every_trial_with_val_acc_and_shows_its_pictures(workdir: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'"
    )
    search = {**tiny_experiment()["search"], "artifacts": True}
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 1}, search=search))
    study = tune(spec, TuneOptions(progress=False))
    values = {f"trial-{t.number:04d}": t.value for t in study.trials}
    assert len(values) == 2

    process, link = _start_ui(workdir, _free_port())
    try:
        with sync_api.sync_playwright() as playwright:
            check = functools.partial(
                _check_runs_and_pictures,
                link=link,
                study_name=study.study_name,
                values=values,
                shots=tmp_path,
            )
            for attempt in range(1, BROWSER_ATTEMPTS + 1):
                if not _chromium_crashed_during(playwright, check, last_try=attempt == BROWSER_ATTEMPTS):
                    break
                warnings.warn(f"Chromium crashed on attempt {attempt}; launching it again", stacklevel=1)
    finally:
        status = _stop(process)
    assert status == 0
    for shot in ("ui-runs.png", "ui-artifacts.png"):
        with Image.open(tmp_path / shot) as image:
            image.verify()
    if os.environ.get("CONVTUNE_DOCS_SCREENSHOTS"):  # refresh the pictures in docs/ on purpose only
        docs = Path(__file__).resolve().parents[2] / "docs"
        docs.mkdir(exist_ok=True)
        for shot in ("ui-runs.png", "ui-artifacts.png"):
            shutil.copy(tmp_path / shot, docs / shot)
