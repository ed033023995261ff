"""`convtune check`: the experiment, its space and its layers, with nothing trained or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli.commands.check import auto_precision_summary
from search.cli.main import main
from tests.conftest import tiny_experiment, write_experiment


def test_a_valid_experiment_is_described_and_nothing_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    before = sorted(workdir.iterdir())
    assert main(["check", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("tiny: digits (") and "search space" in out and "optim.lr" in out
    assert "where results go:" in out and out.endswith("ok: the experiment is valid.")
    assert sorted(workdir.iterdir()) == before


def test_precision_auto_is_spelled_out_for_this_cpu() -> None:
    assert " on this CPU" in auto_precision_summary()


def test_cli_check_prints_space_and_layer_shapes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "optim.lr" in out and "float [0.001, 0.01] log" in out
    assert "receptive field" in out
    assert "ok" in out
    assert "precision auto" not in out


def test_cli_check_says_what_precision_auto_trains_with(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_modules import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    path = write_experiment(workdir, tiny_experiment(trainer={"max_epochs": 1, "precision": "auto"}))
    assert main(["check", str(path)]) == 0
    assert "precision auto: 32 on this CPU" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "backend", "said"),
    [
        ([], "auto", "augment auto: HorizontalFlip, Affine, batched (tensor ops on whole batches"),
        ([{"CoarseDropout": {}}], "auto", "augment auto, no batched form of CoarseDropout (batched:"),
        ([], "albumentations", "augment albumentations: HorizontalFlip, Affine, per image with"),
    ],
)
def test_cli_check_says_how_the_training_batches_are_augmented(
    workdir: Path, capsys: pytest.CaptureFixture[str], extra: list, backend: str, said: str
) -> None:
    raw = tiny_experiment()
    raw["augment"] = [{"HorizontalFlip": {"p": 0.5}}, {"Affine": {"translate_percent": [-0.1, 0.1]}}, *extra]
    raw["data"]["augment_backend"] = backend
    assert main(["check", str(write_experiment(workdir, raw))]) == 0
    assert said in " ".join(capsys.readouterr().out.split())
