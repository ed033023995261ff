"""`convtune check` on image folders as users have them: broken files noted (or refused with
`bad_images: stop`), one class only refused, mixed sizes resized; one line, exit 2 on an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_experiment
from tests.helpers.cli_helpers import run_cli
from tests.lightning_modules.data.image_files import broken_files, gray_pngs, two_classes


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Datasets are looked up under this test's folder, never the user's cache."""
    monkeypatch.setenv("CONVTUNE_DATA", str(tmp_path / "data-cache"))


def _imagefolder_config(root: Path) -> dict:
    return {
        "name": "folder",
        "data": {
            "dataset": "imagefolder",
            "root": str(root),
            "val_fraction": 0.25,
            "batch_size": 4,
        },
        "model": {"name": "convnet", "channels": [4], "kernel_size": 3},
        "trainer": {"max_epochs": 1},
        "search": {"n_trials": 1, "space": {}},
    }


def test_check_prints_the_note_and_stop_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = workdir / "images"
    two_classes(root, count=6)
    broken = broken_files(root / "b")
    path = write_experiment(workdir, _imagefolder_config(root))
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 0, result.err
    assert "skipped 3 of 15 images" in result.out and str(broken[0]) in result.out.replace("\n", "")
    result = run_cli(["check", str(path), "--set", "data.bad_images=stop"], capsys)
    assert result.code == 2
    assert "cannot be read" in result.one_line_error()


def test_check_on_a_single_class_folder_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gray_pngs(workdir / "images" / "only", 6)
    path = write_experiment(workdir, _imagefolder_config(workdir / "images"))
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 2
    assert "at least 2" in result.one_line_error()


def test_check_on_mixed_sizes_is_valid_and_prints_the_size(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gray_pngs(workdir / "images" / "a", 5, size=(6, 6))
    gray_pngs(workdir / "images" / "b", 4, size=(6, 6))
    gray_pngs(workdir / "images" / "b", 1, size=(7, 9), start=20)
    path = write_experiment(workdir, _imagefolder_config(workdir / "images"))
    result = run_cli(["check", str(path)], capsys)
    assert result.code == 0, result.err
    assert "resized all to 6x6" in result.out and "Traceback" not in result.err
