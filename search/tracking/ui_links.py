"""Links into the MLflow UI that open a study's trials the way a team compares them.

What MLflow 3.17.2's UI (its bundle under mlflow/server/js/build) lets a link or an experiment tag
choose, and so what convtune sets:

- Training view, not GenAI: only the URL query `workflowType=machine_learning`. Without it the UI
  uses the browser's localStorage `mlflow.workflowType`, `genai` by default. This UI version ignores
  the experiment tag `mlflow.experimentKind` (its workflow-based navigation flag is always on). We
  still set it to `custom_model_development`, the value the UI writes for a "Machine learning"
  experiment, so that UIs which read the tag agree.
- Sort: the URL query `orderByKey` (for example ``metrics.`val/acc` ``) and `orderByAsc`. When the
  table is sorted by anything but the start time, it lists the parent run and the trials flat, with
  no expanding.
- Columns: no URL query chooses them. A saved view can: the experiment tag
  `mlflow.sharedViewState.<id>`, opened by the URL query `viewStateShareKey=<id>`. It holds the sort,
  the filter and the visible columns, and the UI lists it under "Views". The UI ignores the view when
  the same URL also has `orderByKey`, `orderByAsc`, `searchFilter` or another search parameter, so a
  view link carries the sort inside the view. A view cannot choose which parent runs are expanded.
- The UI's charts use the experiment tag `mlflow.experiment.primaryMetric.name` as their first metric.

No mlflow import here: `Tracker.describe_study` writes the tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote, urlencode

Direction = Literal["maximize", "minimize"]

TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
TAG_PRIMARY_METRIC = "mlflow.experiment.primaryMetric.name"
TAG_GREATER_IS_BETTER = "mlflow.experiment.primaryMetric.greaterIsBetter"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_ID = "convtune"
VIEW_TAG = VIEW_TAG_PREFIX + VIEW_ID
TRAINING_WORKFLOW = "machine_learning"
MAX_TAG_VALUE = 20_000  # MLflow's limit on an experiment tag's value, and the UI's on a saved view


def column_key(kind: Literal["params", "metrics", "tags", "attributes"], name: str) -> str:
    """The UI's name for a runs-table column, which is also its sort key: ``metrics.`val/acc` ``."""
    return f"{kind}.`{name}`"


def param_columns(searched: Iterable[str], param_keys: Iterable[str]) -> list[str]:
    """The logged param that shows each searched key, in order, without repeats.

    A searched key is a param itself (`optim.lr`), or part of a list param (`model.channels.1` is
    shown by `model.channels`): the longest dotted prefix that is a param. A key with no such param
    is kept as it is.
    """
    known = set(param_keys)
    columns: list[str] = []
    for key in searched:
        parts = key.split(".")
        prefixes = (".".join(parts[:end]) for end in range(len(parts), 0, -1))
        column = next((prefix for prefix in prefixes if prefix in known), key)
        if column not in columns:
            columns.append(column)
    return columns


def study_runs_url(
    base_url: str,
    experiment_id: str,
    *,
    metric: str | None = None,
    direction: Direction | None = None,
    view_id: str | None = None,
) -> str:
    """The study's runs page in the training view.

    With `view_id`, the saved view chooses the sort and columns. Without it, `metric` and `direction`
    set the sort in the URL, and the browser's own column choice stays.
    """
    query: dict[str, str] = {"workflowType": TRAINING_WORKFLOW}
    if view_id is not None:
        query["viewStateShareKey"] = view_id
    elif metric is not None:
        query["orderByKey"] = column_key("metrics", metric)
        query["orderByAsc"] = "true" if direction == "minimize" else "false"
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"


def column_width(name: str) -> int:
    """Pixels that show a column's name and a float's 18 digits (the UI's default cuts both)."""
    return max(160, 8 * len(name) + 48)


def saved_view_state(metric: str, direction: Direction, params: Iterable[str]) -> dict[str, Any]:
    """What the saved view sets: best trials first; the metric, then each searched param, as columns.

    The UI keeps its own first columns (run name, created) and puts the others (duration) after these.
    """
    names = {column_key("metrics", metric): metric} | {column_key("params", p): p for p in params}
    return {
        "orderByKey": column_key("metrics", metric),
        "orderByAsc": direction == "minimize",
        "selectedColumns": list(names),
        "columnOrder": list(names),
        "columnWidths": {key: column_width(name) for key, name in names.items()},
    }


def experiment_view_tags(
    metric: str, direction: Direction, params: Iterable[str], *, now_ms: int
) -> dict[str, str]:
    """The experiment tags that make the study open in the training view, sorted, with its columns.

    A view longer than MLflow's limit on a tag value loses its last param columns.
    """
    columns = list(params)
    view = saved_view(metric, direction, columns, now_ms=now_ms)
    while len(view) > MAX_TAG_VALUE and columns:
        columns.pop()
        view = saved_view(metric, direction, columns, now_ms=now_ms)
    return {
        TAG_EXPERIMENT_KIND: TRAINING_KIND,
        TAG_PRIMARY_METRIC: metric,
        TAG_GREATER_IS_BETTER: str(direction == "maximize"),
        VIEW_TAG: view,
    }


def saved_view(metric: str, direction: Direction, params: list[str], *, now_ms: int) -> str:
    """The saved view's tag value: the UI's envelope (name, times in ms) around the state as JSON text."""
    state = json.dumps(saved_view_state(metric, direction, params), separators=(",", ":"))
    envelope = {"name": f"convtune: trials by {metric}", "createdAt": now_ms, "updatedAt": now_ms}
    return json.dumps({**envelope, "state": state}, separators=(",", ":"))


def study_link(base_url: str, experiment_id: str, tags: Mapping[str, str]) -> str:
    """The best link that the experiment's tags allow.

    The saved view if convtune set one; else the sort by the experiment's primary metric; else the
    runs page in the training view.
    """
    if VIEW_TAG in tags:
        return study_runs_url(base_url, experiment_id, view_id=VIEW_ID)
    metric = tags.get(TAG_PRIMARY_METRIC)
    if metric:
        lower_is_better = tags.get(TAG_GREATER_IS_BETTER, "True").lower() == "false"
        direction: Direction = "minimize" if lower_is_better else "maximize"
        return study_runs_url(base_url, experiment_id, metric=metric, direction=direction)
    return study_runs_url(base_url, experiment_id)
