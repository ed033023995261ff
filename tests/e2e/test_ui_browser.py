"""End to end: a study made here, `convtune ui` on a free loopback port, headless Chromium on it.

Needs Debian's `chromium` (`make system-deps`) and the `playwright` Python package (the dev extra);
Playwright drives the system browser, nothing is downloaded. Skipped, with the reason, without them.
"""

from __future__ import annotations

import functools
import io
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

import optuna
import pytest
from PIL import Image
from rich.console import Console

from search.cli.tune_display import TuneDisplay
from search.experiment.spec import validate_experiment
from search.study.runner import TuneOptions, tune
from search.tracking.ui_links import column_key
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
            return process, next(link for line in seen if (link := _study_link(line)))
    process.kill()
    raise AssertionError("convtune ui did not come up:\n" + "".join(seen[-30:]))


def _study_link(text: str) -> str | None:
    match = re.search(r"http://\S+/#/experiments/\d+/runs\?\S+", text)
    return match.group(0) if match else None


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def _table(page: Page, columns: list[str]) -> list[dict[str, str]]:
    """The runs table's rows in display order: run name and the text of each column asked for."""
    return page.locator(".ag-row").evaluate_all(
        """(rows, columns) => {
            const byIndex = {};
            for (const row of rows) {
                const cells = (byIndex[row.getAttribute("row-index")] ??= {});
                const name = row.querySelector('[col-id="attributes.`Run Name`"] a');
                if (name) cells.name = name.innerText.trim();
                for (const column of columns) {
                    const cell = row.querySelector(`[col-id="${column}"]`);
                    if (cell) cells[column] = cell.innerText.trim();
                }
            }
            return Object.keys(byIndex).sort((a, b) => a - b).map((index) => byIndex[index]);
        }""",
        columns,
    )


def _check_runs_and_pictures(page: Page, link: str, study: optuna.Study, shots: Path) -> None:
    """What the printed link shows: the trials in the training view, best first, with the metric and
    the searched params as columns; then one trial's pictures."""
    metric, searched = column_key("metrics", "val/acc"), ["optim.lr", "model.kernel_size"]
    trials = {f"trial-{t.number:04d}": t for t in study.trials}
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(link)
    for name in trials:
        page.get_by_role("link", name=name).wait_for()  # flat, sorted rows: no parent run to expand
    page.get_by_test_id("sort-header-val/acc").wait_for()
    assistant = page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']")
    if assistant.count():  # the MLflow Assistant opens by itself on a browser's first visit
        assistant.first.click()

    # the training view: the "Model training" sidebar, not the GenAI one (Judges, Playground, ...)
    sidebar = page.locator("nav").first.inner_text()
    assert "Model registry" in sidebar and "Judges" not in sidebar, sidebar
    assert page.get_by_test_id("saved-views-trigger").inner_text().strip() == "convtune: trials by val/acc"
    assert page.get_by_role("button", name="Sort: val/acc").count() == 1

    headers = page.locator(".ag-header-cell[col-id]").evaluate_all(
        "els => els.map(e => e.getAttribute('col-id'))"
    )
    columns = [metric, *(column_key("params", key) for key in searched)]
    assert all(column in headers for column in columns), headers
    rows = _table(page, columns)
    # every trial, then the parent run, which has no val/acc: MLflow sorts a missing value last
    assert sorted(row["name"] for row in rows[:-1]) == sorted(trials), rows
    assert rows[-1]["name"] == study.study_name, rows
    shown = [float(row[metric]) for row in rows[:-1]]
    assert shown == sorted(shown, reverse=True), rows  # maximize val/acc: best first
    for row in rows[:-1]:
        trial = trials[row["name"]]
        assert float(row[metric]) == pytest.approx(trial.value, abs=1e-6), row
        for key in searched:
            assert float(row[column_key("params", key)]) == pytest.approx(trial.params[key]), row
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


def test_ui_link_opens_the_trials_sorted_by_the_metric_with_their_params_and_pictures(
    workdir: Path, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'"
    )
    space = {"optim.lr": {"float": [1e-3, 1e-2], "log": True}, "model.kernel_size": {"choice": [3, 5]}}
    search = {**tiny_experiment()["search"], "n_trials": 3, "artifacts": True, "space": space}
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 1}, search=search))
    printed = io.StringIO()
    study = tune(spec, TuneOptions(), TuneDisplay(Console(file=printed, width=80)))
    assert len(study.trials) == 3
    tune_link = _study_link(printed.getvalue())
    assert tune_link is not None, printed.getvalue()

    port = _free_port()
    process, link = _start_ui(workdir, port)
    try:
        assert link == tune_link.replace(":5000/", f":{port}/")  # `tune` and `convtune ui` agree
        with sync_api.sync_playwright() as playwright:
            check = functools.partial(_check_runs_and_pictures, link=link, study=study, shots=tmp_path)
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
