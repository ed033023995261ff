"""`search.tracking.vocabulary`: every name convtune writes, one constant each, importable for free."""

from __future__ import annotations

from search.tracking import vocabulary as v
from tests.helpers.fresh_imports import imported_packages


def _names(prefix: str) -> dict[str, str]:
    names = vars(v).items()
    return {name: value for name, value in names if name.startswith(prefix) and isinstance(value, str)}


def test_run_tags_are_namespaced_and_distinct() -> None:
    tags = _names("TAG_")
    assert len(set(tags.values())) == len(tags), "two constants name the same tag"
    assert all(value.split(".")[0] in ("mlflow", "optuna", "convtune") for value in tags.values()), tags
    assert v.TAG_PARENT_RUN == "mlflow.parentRunId"  # MLflow's own: nests a trial's run
    assert (v.TAG_STUDY, v.TAG_TRIAL_NUMBER, v.TAG_STATE) == (
        "optuna.study",
        "optuna.trial_number",
        "optuna.state",
    )  # DESIGN.md's MLflow contract


def test_user_attrs_metrics_and_costs_are_distinct() -> None:
    attrs = _names("ATTR_")
    assert len(set(attrs.values())) == len(attrs)
    assert v.ATTR_RUN_ID == "mlflow_run_id" and set(v.TRIAL_NOTES) <= set(attrs.values())
    assert all(name.startswith(v.COST_PREFIX) for name in v.COST_METRICS)
    assert {"train/loss", "val/loss", "val/acc", "lr", "throughput/img_s"} <= set(v.EPOCH_METRICS)


def test_importing_it_imports_nothing_else() -> None:
    imported = imported_packages("import search.tracking.vocabulary")
    assert not [name for name in imported if any(heavy in name for heavy in ("mlflow", "torch", "optuna"))]
