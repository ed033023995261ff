"""The Pareto front of a study: which trials are on it, its table and plots, and picking from it.

A Pareto study (`search.objectives`) keeps the trials that no other trial beats in its metric and
every cost at once; that is Optuna's `study.best_trials` (feasible COMPLETE trials only; a trial over
a budget is never COMPLETE). The parent run holds `pareto_front.md` (the front as a table),
`pareto_front.html` (Optuna's `plot_pareto_front`, the metric against each cost, plotly) and one
`pareto_front_<cost>.png` per cost (`optuna.visualization.matplotlib`). `pick` chooses the best
trial within a budget (`reproduce --pick "cost/latency_ms <= 2"`), from the cost numbers every trial
records, so it works on single-objective studies too, and `alias_for` names the registered model
after the budget (`latency-2ms`), beside `champion`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import ConvtuneError
from search.experiment.budgets import Budget, format_cost
from search.tracking import vocabulary as v

if TYPE_CHECKING:
    from search.tracking.tracker import Tracker

TABLE_COSTS = (v.COST_PARAMS, v.COST_MACS, v.COST_LATENCY_MS, v.COST_LATENCY_MS_BATCH, v.COST_SIZE_BYTES)
_ALIAS_UNITS = {
    v.COST_PARAMS: ("params", ""),
    v.COST_MACS: ("macs", ""),
    v.COST_SIZE_BYTES: ("size", "b"),
    v.COST_LATENCY_MS: ("latency", "ms"),
    v.COST_LATENCY_MS_BATCH: ("latency-batch", "ms"),
    v.COST_LATENCY_MS_TRIAL_PRECISION: ("latency-trial-precision", "ms"),
    v.COST_LATENCY_MS_BATCH_TRIAL_PRECISION: ("latency-batch-trial-precision", "ms"),
}


# --- the study's objectives ------------------------------------------------------------------------


def is_pareto(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def maximizes(study: optuna.Study) -> bool:
    """Whether the study's metric (its first objective) is maximized."""
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def metric_value(trial: FrozenTrial) -> float | None:
    """The trial's metric (its first objective value), None when it has no value."""
    return trial.values[0] if trial.values else None


def objective_names(study: optuna.Study) -> list[str]:
    """The metric, then the cost objectives, as the experiment file names them."""
    search = study.user_attrs.get(v.STUDY_ATTR_EXPERIMENT, {}).get("search", {})
    objectives = search.get("objectives") or [{"metric": search.get("metric", "objective value")}]
    names = [str(objective["metric"]) for objective in objectives]
    return names + [f"objective {i}" for i in range(len(names), len(study.directions))]


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front, cheapest first in the first cost; empty for a single-objective study."""
    if not is_pareto(study) or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    return sorted(study.best_trials, key=lambda t: (t.values[1], t.number))


# --- picking ---------------------------------------------------------------------------------------


def pick(study: optuna.Study, budget: Budget) -> FrozenTrial:
    """The COMPLETE trial with the best metric among those within `budget` (ties: the cheaper);
    in a Pareto study whose costs include the budget's metric, that is a front trial."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    measured = [t for t in completed if budget.metric in t.user_attrs]
    within = [t for t in measured if budget.fits(float(t.user_attrs[budget.metric]))]
    if not within:
        cheapest = min(measured, key=lambda t: float(t.user_attrs[budget.metric]), default=None)
        seen = (
            f"the cheapest is trial {cheapest.number} with "
            f"{format_cost(float(cheapest.user_attrs[budget.metric]))}"
            if cheapest is not None
            else f"no COMPLETE trial recorded {budget.metric}"
        )
        raise ConvtuneError(
            f"no COMPLETE trial of study {study.study_name!r} fits {budget} ({seen}); "
            "raise the budget or see `convtune status`."
        )
    sign = -1.0 if maximizes(study) else 1.0
    return min(within, key=lambda t: (sign * t.values[0], float(t.user_attrs[budget.metric]), t.number))


def alias_for(budget: Budget) -> str:
    """A registered-model alias that says the budget (`latency-2ms`, `params-100k`, `size-lt-400kb`):
    letters, digits, `-` and `_` only, as MLflow requires."""
    name, unit = _ALIAS_UNITS[budget.metric]
    return f"{name}-{'lt-' if budget.strict else ''}{_short_number(budget.limit)}{unit}"


def _short_number(value: float) -> str:
    for factor, suffix in ((1e9, "g"), (1e6, "m"), (1e3, "k")):
        if value >= factor:
            return _plain(value / factor) + suffix
    return _plain(value)


def _plain(value: float) -> str:
    return re.sub(r"[^\w]", "", f"{value:.6g}".replace(".", "p"))


# --- the table -------------------------------------------------------------------------------------


def front_markdown(study: optuna.Study) -> str:
    """The front as a markdown table: metric, costs, MLflow run and params per trial."""
    names = objective_names(study)
    trials = front(study)
    costs = list(dict.fromkeys([*names[1:], *TABLE_COSTS]))
    params = sorted({name for trial in trials for name in trial.params})
    lines = [
        f"# Pareto front of study {study.study_name}",
        "",
        f"{len(trials)} trials: {names[0]} ({study.directions[0].name.lower()}d) against "
        + ", ".join(names[1:])
        + " (minimized), cheapest first.",
        "",
    ]
    if not trials:
        return "\n".join([*lines, "No COMPLETE trial yet.", ""])
    lines.append("| trial | " + " | ".join([names[0], *costs, "MLflow run", *params]) + " |")
    lines.append("|" + "---|" * (3 + len(costs) + len(params)))
    for trial in trials:
        row = [f"trial-{trial.number:04d}", f"{trial.values[0]:.4f}"]
        row += [_cost_cell(trial, name) for name in costs]
        row.append(f"`{trial.user_attrs.get(v.ATTR_RUN_ID, '')}`")
        row += [_param_cell(trial.params.get(name)) for name in params]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join([*lines, ""])


def _cost_cell(trial: FrozenTrial, name: str) -> str:
    value = trial.user_attrs.get(name)
    return "" if value is None else format_cost(float(value))


def _param_cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- the plots -------------------------------------------------------------------------------------


def _targets(index: int) -> Callable[[FrozenTrial], Sequence[float]]:
    return lambda trial: (trial.values[index], trial.values[0])


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


def write_front(study: optuna.Study, folder: Path) -> list[Path]:
    """pareto_front.md, pareto_front.html and a PNG per cost in `folder`; nothing for one objective."""
    if not is_pareto(study):
        return []
    import optuna.visualization as plots  # lazy: plotly's ~0.4 s, which `convtune status` never needs

    names = objective_names(study)
    written = [folder / "pareto_front.md"]
    written[0].write_text(front_markdown(study))
    sections = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # targets= and the matplotlib plots are experimental
        for index in range(1, len(study.directions)):
            labels = [names[index], names[0]]
            figure = plots.plot_pareto_front(study, targets=_targets(index), target_names=labels)
            figure.update_layout(title=f"Pareto front: {names[0]} against {names[index]}")
            sections.append(figure.to_html(full_html=False, include_plotlyjs=not sections))
            written.append(
                _front_png(study, index, labels, folder / f"pareto_front_{_safe(names[index])}.png")
            )
    page = folder / "pareto_front.html"
    title = f"study {study.study_name}: Pareto front"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h2>{title}</h2>{''.join(sections)}</body></html>"
    )
    return [*written, page]


def _front_png(study: optuna.Study, index: int, labels: list[str], path: Path) -> Path:
    import matplotlib  # lazy, like plotly above: ~0.2 s for a Pareto study's pictures only

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import optuna.visualization.matplotlib as plots
    from matplotlib import pyplot

    axes = plots.plot_pareto_front(study, targets=_targets(index), target_names=labels)
    figure = axes.figure
    try:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        pyplot.close(figure)
    return path


# --- MLflow tags -----------------------------------------------------------------------------------


def tag_front(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> None:
    """Tags the study's run with the front's trial numbers and each COMPLETE trial's run with whether
    it is on the front (filter the MLflow UI with `tags.convtune.pareto_front = 'true'`); a
    `runner.StudyHook`."""
    if not is_pareto(study):
        return
    on_front = {trial.number for trial in front(study)}
    tracker.set_tags(parent_run_id, {v.TAG_FRONT_TRIALS: ",".join(map(str, sorted(on_front)))})
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        run_id = trial.user_attrs.get(v.ATTR_RUN_ID)
        if run_id:
            tracker.set_tags(run_id, {v.TAG_ON_FRONT: str(trial.number in on_front).lower()})
