"""The links and experiment tags that open a study in MLflow's training view, sorted, with its columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from search.tracking.ui_links import (
    MAX_TAG_VALUE,
    TAG_EXPERIMENT_KIND,
    TAG_GREATER_IS_BETTER,
    TAG_PRIMARY_METRIC,
    VIEW_ID,
    VIEW_TAG,
    column_key,
    experiment_view_tags,
    param_columns,
    saved_view_state,
    study_link,
    study_runs_url,
)

BASE = "http://127.0.0.1:5000"


def _query(url: str) -> dict[str, str]:
    """The query of a hash-router link (`/#/experiments/1/runs?...`), decoded as the UI decodes it."""
    route = urlsplit(url).fragment
    path, _, query = route.partition("?")
    assert path.startswith("/experiments/") and path.endswith("/runs"), url
    return {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}


def test_column_keys_are_the_uis_backquoted_names() -> None:
    assert column_key("metrics", "val/acc") == "metrics.`val/acc`"
    assert column_key("params", "optim.lr") == "params.`optim.lr`"


def test_a_view_link_opens_the_training_view_and_carries_no_sort_of_its_own() -> None:
    url = study_runs_url(BASE + "/", "7", metric="val/acc", direction="maximize", view_id=VIEW_ID)
    assert url.startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    # the UI drops a saved view when the URL also has orderByKey, orderByAsc, searchFilter, ...
    assert _query(url) == {"workflowType": "machine_learning", "viewStateShareKey": "convtune"}


@pytest.mark.parametrize(("direction", "ascending"), [("maximize", "false"), ("minimize", "true")])
def test_without_a_view_the_link_sorts_by_the_metric(direction: Any, ascending: str) -> None:
    url = study_runs_url(BASE, "3", metric="val/loss", direction=direction)
    assert "%60val%2Floss%60" in url  # backquotes and the slash are percent-encoded
    assert _query(url) == {
        "workflowType": "machine_learning",
        "orderByKey": "metrics.`val/loss`",
        "orderByAsc": ascending,
    }


def test_without_a_metric_the_link_still_opens_the_training_view() -> None:
    assert _query(study_runs_url(BASE, "3")) == {"workflowType": "machine_learning"}


def test_searched_keys_map_to_the_params_that_show_them() -> None:
    params = ["optim.lr", "model.channels", "model.kernel_size", "augment"]
    searched = ["optim.lr", "model.channels.0", "model.channels.1", "model.kernel_size", "augment.0.p", "x.y"]
    assert param_columns(searched, params) == [
        "optim.lr",
        "model.channels",
        "model.kernel_size",
        "augment",
        "x.y",
    ]


@pytest.mark.parametrize(("direction", "ascending"), [("maximize", False), ("minimize", True)])
def test_the_saved_view_sorts_best_first_and_shows_the_metric_then_the_params(
    direction: Any, ascending: bool
) -> None:
    state = saved_view_state("val/acc", direction, ["optim.lr", "model.kernel_size"])
    columns = ["metrics.`val/acc`", "params.`optim.lr`", "params.`model.kernel_size`"]
    assert state["orderByKey"] == "metrics.`val/acc`"
    assert state["orderByAsc"] is ascending
    assert state["selectedColumns"] == columns
    assert state["columnOrder"] == columns
    assert set(state["columnWidths"]) == set(columns)
    assert all(160 <= width <= 400 for width in state["columnWidths"].values())
    # UI state the UI never takes from a view: which parent runs are expanded, pinned, hidden
    assert not {"runsExpanded", "runsPinned", "runsHidden", "runsVisibilityMap"} & set(state)


def test_experiment_tags_are_mlflows_own_and_the_views_envelope() -> None:
    tags = experiment_view_tags("val/loss", "minimize", ["optim.lr"], now_ms=1_700_000_000_000)
    assert tags[TAG_EXPERIMENT_KIND] == "custom_model_development"
    assert tags[TAG_PRIMARY_METRIC] == "val/loss"
    assert tags[TAG_GREATER_IS_BETTER] == "False"
    assert VIEW_TAG == "mlflow.sharedViewState.convtune"
    view = json.loads(tags[VIEW_TAG])  # the UI's envelope: name, createdAt, updatedAt, state as text
    assert view["name"] == "convtune: trials by val/loss"
    assert view["createdAt"] == view["updatedAt"] == 1_700_000_000_000
    assert json.loads(view["state"]) == saved_view_state("val/loss", "minimize", ["optim.lr"])
    assert all(isinstance(value, str) for value in tags.values())


def test_a_view_too_long_for_a_tag_drops_its_last_param_columns() -> None:
    params = [f"model.block{i}.some_long_parameter_name" for i in range(400)]
    view = json.loads(experiment_view_tags("val/acc", "maximize", params, now_ms=0)[VIEW_TAG])
    shown = json.loads(view["state"])["selectedColumns"]
    assert len(experiment_view_tags("val/acc", "maximize", params, now_ms=0)[VIEW_TAG]) <= MAX_TAG_VALUE
    assert shown[0] == "metrics.`val/acc`"
    assert shown[1:] == [column_key("params", p) for p in params[: len(shown) - 1]]
    assert 10 < len(shown) < 400


def test_the_link_follows_what_the_experiment_was_tagged_with() -> None:
    tagged = experiment_view_tags("val/acc", "maximize", ["optim.lr"], now_ms=0)
    assert _query(study_link(BASE, "2", tagged))["viewStateShareKey"] == VIEW_ID
    metric_only = {TAG_PRIMARY_METRIC: "val/loss", TAG_GREATER_IS_BETTER: "False"}
    assert _query(study_link(BASE, "2", metric_only))["orderByAsc"] == "true"
    assert _query(study_link(BASE, "2", {TAG_PRIMARY_METRIC: "val/acc"}))["orderByAsc"] == "false"
    assert _query(study_link(BASE, "2", {})) == {"workflowType": "machine_learning"}


def test_prepare_study_tags_the_experiment_with_its_view(workdir: Path) -> None:
    """End to end on the MLflow store: `convtune tune` (before any trial) leaves the view's tags."""
    from mlflow import MlflowClient

    from search.experiment.spec import validate_experiment
    from search.study.prepare import prepare_study
    from search.study.runner import TuneOptions
    from search.tracking import load_settings
    from tests.conftest import tiny_experiment

    space = {"optim.lr": {"float": [1e-3, 1e-2], "log": True}, "model.channels.1": {"choice": [16, 32]}}
    search = {**tiny_experiment()["search"], "metric": "val/loss", "space": space}
    prepared = prepare_study(validate_experiment(tiny_experiment(search=search)), TuneOptions(progress=False))
    tags = MlflowClient(load_settings().tracking_uri).get_experiment_by_name(prepared.study.study_name).tags
    assert tags[TAG_EXPERIMENT_KIND] == "custom_model_development"
    assert (tags[TAG_PRIMARY_METRIC], tags[TAG_GREATER_IS_BETTER]) == ("val/loss", "False")
    state = json.loads(json.loads(tags[VIEW_TAG])["state"])
    assert state == saved_view_state("val/loss", "minimize", ["optim.lr", "model.channels"])
