"""`search.reproduce.reproduce`: the verdict of a reproduction, and `convtune reproduce` without a study."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState, create_trial

from lightning_modules.config import RunConfig
from search.cli.main import main
from search.inspect.evaluation import Evaluation
from search.reproduce.reproduce import Reproduction
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.tiny_runs import untrained_model


def test_reproduce_without_a_study_is_a_config_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["reproduce", str(path)]) == 2
    assert "no study named 'tiny'" in capsys.readouterr().err


def _reproduction(
    state: TrialState, original: float | None, value: float, changed: list[str]
) -> Reproduction:
    trial = create_trial(state=state, value=original, params={}, distributions={})
    trial.number = 7
    config = RunConfig.model_validate({"data": {"dataset": "digits"}, "trainer": {"accelerator": "cpu"}})
    test = Evaluation(["a", "b"], torch.zeros(2, 2, dtype=torch.int64))
    return Reproduction(trial, config, "val/acc", original, value, 1, test, untrained_model([]), "run", 1.0,
                        changed=changed)  # fmt: skip


def test_the_verdict_compares_only_what_is_comparable() -> None:
    pruned = _reproduction(TrialState.PRUNED, None, 0.5, [])
    assert pruned.verdict() == "trial 7 was PRUNED: it has no final value to compare." and not pruned.matches
    changed = _reproduction(TrialState.COMPLETE, 0.5, 0.5, ["seed", "trainer.max_epochs"])
    assert not changed.comparable and not changed.matches
    assert changed.verdict() == (
        "not comparable: the reproduction changed the trial's seed, trainer.max_epochs."
    )
    same = _reproduction(TrialState.COMPLETE, 0.5, 0.5, [])
    assert same.matches and same.verdict() == "matches the original to the last digit (val/acc=0.5)."
    other = _reproduction(TrialState.COMPLETE, 0.75, 0.5, [])
    assert other.hint() == ""
    assert other.verdict() == "differs from the original: 0.5 vs 0.75 (difference -0.25)."
