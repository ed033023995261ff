"""The experiment's `reproduce:` section (what `tune --budget` reproduces): it applies to the reproduction
only, and a bad one is one line. The rest of `tune --budget`: tests/search/time_budget/, tests/e2e/."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.experiment.spec import load_experiment, reproduction_spec
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli

# --- the experiment's reproduce: section -----------------------------------------------------------


def test_the_reproduce_section_applies_to_the_reproduction_only(workdir: Path) -> None:
    raw = tiny_experiment(reproduce={"epochs": 3, "top_k": 2, "set": {"data.train_fraction": 0.5}})
    spec = load_experiment(write_experiment(workdir, raw))
    assert spec.data.train_fraction == 1.0 and spec.reproduce.epochs == 3
    assert "reproduce" not in spec.run_dict()
    reproduction = reproduction_spec(spec, ["data.train_fraction=0.25"])
    assert reproduction.data.train_fraction == 0.25  # --set wins over the section
    assert reproduction_spec(spec).data.train_fraction == 0.5


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"set": {"search.n_trials": 3}}, "reproduce.set key 'search.n_trials' must start with one of"),
        ({"set": {"data.train_fraction": 2}}, "train_fraction must be in (0, 1]"),
        ({"top_k": 0}, "reproduce.top_k"),
        ({"epoch": 3}, "unknown key 'reproduce.epoch'"),
    ],
)
def test_a_bad_reproduce_section_is_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], section: dict, message: str
) -> None:
    experiment = write_experiment(workdir, tiny_experiment(reproduce=section))
    result = run_cli(["check", str(experiment)], capsys)
    assert result.code == 2
    assert message in result.one_line_error()


# --- the command line ----------------------------------------------------------------------------
