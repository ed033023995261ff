"""`search/cli/commands/__init__.py`: the flags commands share, and `--study`/`--storage` checked first."""

from __future__ import annotations

import argparse

import pytest

from search.cli.commands import add_experiment, add_study, checked_study
from search.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_experiment(parser)
    add_study(parser)
    return parser


def test_the_shared_flags() -> None:
    args = _parser().parse_args(["x.yaml", "--set", "optim.lr=0.1", "--set", "seed=1", "--study", "s"])
    assert (args.experiment, args.overrides, args.study, args.storage) == (
        "x.yaml", ["optim.lr=0.1", "seed=1"], "s", None
    )  # fmt: skip
    assert checked_study(args) == "s"
    assert checked_study(_parser().parse_args(["x.yaml"])) is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--study", "../up"], "--study"), (["--storage", "ftp://host/db"], "unknown storage scheme")],
)
def test_a_bad_study_name_or_storage_is_a_config_error(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        checked_study(_parser().parse_args(["x.yaml", *flags]))
