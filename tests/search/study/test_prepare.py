"""Before the first trial: every check, then the study and its parent run."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import ConfigError
from search.experiment.spec import validate_experiment
from search.study.prepare import prepare_study, study_view
from search.study.runner import TuneOptions, tune
from search.tracking import vocabulary as v
from search.tracking.ui_links import TAG_GREATER_IS_BETTER, TAG_PRIMARY_METRIC, VIEW_TAG
from tests.conftest import tiny_experiment


def test_a_space_with_no_feasible_architecture_fails_before_any_trial(workdir: Path) -> None:
    raw = tiny_experiment()
    raw["search"]["space"] = {"model.stride": {"choice": [4, 8]}}
    spec = validate_experiment(raw)
    with pytest.raises(ConfigError, match="no architecture in the search space fits the 8x8 inputs"):
        tune(spec, TuneOptions(progress=False))
    assert not (workdir / ".convtune").exists()
    assert not (workdir / "mlflow.db").exists()


def test_the_prepared_study_holds_the_experiment_its_parent_run_and_the_checks(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment())
    prepared = prepare_study(spec, TuneOptions(progress=False, study_name="prepared"))
    study = prepared.study
    assert study.study_name == "prepared" and prepared.warm is None
    assert study.user_attrs[v.STUDY_ATTR_PARENT_RUN] == prepared.parent_run_id
    assert validate_experiment(study.user_attrs[v.STUDY_ATTR_EXPERIMENT]) == spec
    assert (prepared.checked.in_channels, prepared.checked.image_size) == (1, (8, 8))
    again = prepare_study(spec, TuneOptions(progress=False, study_name="prepared"))
    assert again.parent_run_id == prepared.parent_run_id  # rerunning resumes the same parent run


def test_the_study_view_sorts_by_the_metric_and_shows_the_searched_params() -> None:
    spec = validate_experiment(tiny_experiment())
    tags = study_view(spec)
    assert tags[TAG_PRIMARY_METRIC] == "val/acc" and tags[TAG_GREATER_IS_BETTER] == "True"
    assert "optim.lr" in tags[VIEW_TAG]
