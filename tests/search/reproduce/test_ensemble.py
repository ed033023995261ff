"""`search.reproduce.ensemble`: which trials make an ensemble, and what `--top-k` refuses."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import torch

from lightning_modules.data import load_dataset
from search.errors import ConfigError
from search.experiment.spec import validate_experiment
from search.inspect.evaluation import evaluate_model
from search.reproduce.ensemble import (
    MEMBER_SEEDS_NOTE,
    final_ensemble_test,
    merged_notes,
    reproduce_ensemble,
)
from search.reproduce.ensemble_model import EnsembleModel
from search.reproduce.member import Member
from search.reproduce.options import ReproduceOptions
from search.tracking.model_store import InferenceModel
from tests.conftest import tiny_experiment
from tests.helpers.tiny_runs import untrained_model


def test_top_k_refuses_trial_and_pick() -> None:
    spec = validate_experiment(tiny_experiment())
    with pytest.raises(ConfigError, match="--top-k chooses its trials"):
        reproduce_ensemble(spec, ReproduceOptions(trial=1), 2)


def test_final_ensemble_test_combines_each_members_test_pass_as_the_ensemble_would() -> None:
    members = [_member(untrained_model(tta), seed) for seed, tta in enumerate([[], ["HorizontalFlip"], []])]
    used = [0, 2]
    ensemble = EnsembleModel([members[i].model for i in used], [0.3, 0.7])
    arrays = load_dataset("digits")
    split = SimpleNamespace(test_images=arrays.test_images[:120], test_labels=arrays.test_labels[:120])

    evaluation = final_ensemble_test(ensemble, members, used, split)  # type: ignore[arg-type]

    served = evaluate_model(ensemble, split.test_images, split.test_labels)
    assert evaluation.accuracy == served.accuracy
    assert torch.equal(evaluation.confusion, served.confusion)
    for member in members:
        alone = evaluate_model(member.model, split.test_images, split.test_labels).accuracy
        assert member.test_accuracy == alone


def _member(model: InferenceModel, seed: int) -> Member:
    """`model` with its weights moved by seeded noise, so that members disagree."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
    trial = optuna.trial.create_trial(value=0.5, params={}, distributions={})
    return Member(trial, run_id=f"run-{seed}", model=model, value=0.5, weights="final", val_accuracy=0.5)


def test_members_notes_that_say_the_same_are_one_line() -> None:
    changed = "--set changes the trial's config (data.train_fraction); the values may differ."
    notes = [
        MEMBER_SEEDS_NOTE,
        f"trial 33: {changed}",
        "trial 33: trainer.max_epochs=25 instead of the trial's 5.",
        f"trial 62: {changed}",
        "trial 62: trainer.max_epochs=25 instead of the trial's 5.",
        f"trial 42: {changed}",
        "trial 42: trainer.max_epochs=30 instead of the trial's 5.",
        "trial 42: 30 epochs instead of the 25 planned, at the pace the members before it kept.",
    ]
    assert merged_notes(notes) == [
        MEMBER_SEEDS_NOTE,
        f"trials 33, 62 and 42: {changed}",
        "trials 33 and 62: trainer.max_epochs=25 instead of the trial's 5.",
        "trial 42: trainer.max_epochs=30 instead of the trial's 5.",
        "trial 42: 30 epochs instead of the 25 planned, at the pace the members before it kept.",
    ]
