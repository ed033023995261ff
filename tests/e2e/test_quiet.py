"""`convtune tune` shows its own progress only: library warnings and tips go to the log file."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import start_cli

NOISE = ("Warning", "Tip", "litlogger", "GPU available", "complete trials", "Heartbeat", "many workers")


def test_tune_prints_no_third_party_warnings_and_logs_them(workdir: Path) -> None:
    raw = tiny_experiment(
        search__n_trials=1, search__artifacts=True, trainer__max_epochs=1, trainer__limit_val_batches=0.001
    )
    path = write_experiment(workdir, raw)  # no validation batch: trials fail, the plots have nothing
    process = start_cli(["tune", str(path), "--storage", "sqlite:///optuna.db"], workdir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    for noise in NOISE:
        assert noise not in out + err, f"{noise!r} reached the terminal:\n{err}"
    assert "study tiny" in err and "FAIL" in out + err
    (log,) = (workdir / ".convtune" / "logs").glob("tune-*.log")
    text = log.read_text()
    assert "Heartbeat of storage" in text and "GPU available" in text and "complete trials" in text
