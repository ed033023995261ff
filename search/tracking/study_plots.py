"""The study's own pictures on its parent MLflow run: Optuna's plots and a summary of the top trials.

In a Pareto study the four plots show its metric (the first objective), and `search.study.pareto` adds
the front's table and plots beside them.

Written as `study_plots.html` (the four interactive plotly plots in one page, plotly.js embedded
once so that it works offline and inside MLflow's artifact viewer), one PNG per plot (drawn by
`optuna.visualization.matplotlib`, since plotly's PNG export needs kaleido) and `summary.md`.
`StudyPlotsRefresher` refreshes them while the study runs, keeping its own cost a small share of
the elapsed time; `log_study_plots` (a `runner.StudyHook`) writes them once more at the end.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import first_line
from search.study.pareto import is_pareto, maximizes, metric_value, write_front
from search.tracking import vocabulary as v

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from search.study.objective import Objective
    from search.tracking.tracker import Tracker

logger = logging.getLogger(__name__)

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "slice")
TOP_TRIALS = 10


@dataclass
class StudyPlots:
    """What `write_study_plots` wrote, and why a plot was left out (e.g. too few finished trials)."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _metric(study: optuna.Study) -> str:
    search = study.user_attrs.get(v.STUDY_ATTR_EXPERIMENT, {}).get("search", {})
    return str(search.get("metric", "objective value"))


def _importance_evaluator() -> optuna.importance.BaseImportanceEvaluator:
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def _target(study: optuna.Study) -> dict[str, Any]:
    """Optuna's `target=` for a Pareto study's plots (its metric); nothing for one objective."""
    return {"target": metric_value} if is_pareto(study) else {}


def _plotly_figure(name: str, study: optuna.Study, target_name: str) -> Figure:
    import optuna.visualization as plots  # lazy: plotly and matplotlib (~0.4 s) only once plots are drawn

    target = _target(study)
    if name == "param_importances":
        return plots.plot_param_importances(study, _importance_evaluator(), target_name=target_name, **target)
    return getattr(plots, f"plot_{name}")(study, target_name=target_name, **target)


def _matplotlib_png(name: str, study: optuna.Study, target_name: str, path: Path) -> None:
    import matplotlib  # lazy, as above; and the backend must be chosen before pyplot is imported

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")  # Optuna's matplotlib plots use pyplot; never open a window
    import optuna.visualization.matplotlib as plots
    from matplotlib import pyplot

    target = _target(study)
    if name == "param_importances":
        axes = plots.plot_param_importances(study, _importance_evaluator(), target_name=target_name, **target)
    else:
        axes = getattr(plots, f"plot_{name}")(study, target_name=target_name, **target)
    figure = np.atleast_1d(axes).flat[0].figure
    try:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        pyplot.close(figure)


def write_study_plots(study: optuna.Study, folder: Path) -> StudyPlots:
    """The four plots as one HTML page and four PNGs in `folder`; a plot that cannot be drawn yet
    (fewer than two finished trials, a single parameter value) is listed in `skipped` instead."""
    result = StudyPlots()
    target = _metric(study)
    sections: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for the matplotlib plots
        for name in PLOTS:
            try:
                figure = _plotly_figure(name, study, target)
                sections.append(figure.to_html(full_html=False, include_plotlyjs=not sections))
                png = folder / f"{name}.png"
                _matplotlib_png(name, study, target, png)
                result.written.append(png)
            except Exception as error:  # an empty or one-valued study: say so, draw the rest
                result.skipped[name] = first_line(error)
    if sections:
        page = folder / "study_plots.html"
        title = f"study {study.study_name}: {target}"
        page.write_text(
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h2>{title}</h2>{''.join(sections)}</body></html>"
        )
        result.written.append(page)
    try:
        result.written += write_front(study, folder)
    except Exception as error:  # no finished trial yet: say so, keep the rest
        result.skipped["pareto_front"] = first_line(error)
    summary = folder / "summary.md"
    summary.write_text(summary_markdown(study, result.skipped))
    result.written.append(summary)
    return result


def _value(trial: FrozenTrial) -> float:
    value = metric_value(trial)
    return value if value is not None else math.nan


def top_trials(study: optuna.Study, limit: int = TOP_TRIALS) -> list[FrozenTrial]:
    """Completed trials, best first in the metric (the study's direction decides)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return sorted(done, key=_value, reverse=maximizes(study))[:limit]


def _format_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def summary_markdown(study: optuna.Study, skipped: dict[str, str] | None = None) -> str:
    """A markdown page: trial counts per state, the top trials with their parameters, importances."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    metric = _metric(study)
    lines = [
        f"# study {study.study_name}",
        "",
        f"{metric}, {study.directions[0].name.lower()}d; trials: "
        + ", ".join(f"{count} {name.lower()}" for name, count in counts.items() if count),
        "",
    ]
    best = top_trials(study)
    if best:
        names = sorted({name for trial in best for name in trial.params})
        lines += [f"## top {len(best)} trials", ""]
        lines.append("| rank | trial | " + metric + " | MLflow run | " + " | ".join(names) + " |")
        lines.append("|" + "---|" * (4 + len(names)))
        for rank, trial in enumerate(best, start=1):
            params = [_format_param(trial.params[name]) if name in trial.params else "" for name in names]
            run = trial.user_attrs.get(v.ATTR_RUN_ID, "")
            row = [str(rank), f"trial-{trial.number:04d}", f"{_value(trial):.4f}", f"`{run}`", *params]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    importances = _importances(study)
    if importances:
        lines += ["## parameter importances (fANOVA)", ""]
        lines += [f"- `{name}`: {share:.2f}" for name, share in importances.items()]
        lines.append("")
    if skipped:
        lines += ["## plots not drawn yet", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped.items()]
        lines.append("")
    return "\n".join(lines)


def _importances(study: optuna.Study) -> dict[str, float]:
    try:
        return optuna.importance.get_param_importances(
            study, evaluator=_importance_evaluator(), **_target(study)
        )
    except Exception:  # fewer than two completed trials, or no parameter that varies
        return {}


def log_study_plots(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> StudyPlots | None:
    """Writes the plots and summary to the study's parent run (unless the experiment turns
    artifacts off); a `runner.StudyHook`."""
    if not study.user_attrs.get(v.STUDY_ATTR_EXPERIMENT, {}).get("search", {}).get("artifacts", True):
        return None
    with tempfile.TemporaryDirectory(prefix="convtune-study-") as folder:
        result = write_study_plots(study, Path(folder))
        tracker.log_artifacts(parent_run_id, folder)
    return result


class StudyPlotsRefresher:
    """A trial observer that refreshes the study's plots every `every` finished trials, and only when
    the last refresh took at most `max_share` of the time since it ended (the search comes first)."""

    def __init__(
        self,
        tracker: Tracker,
        parent_run_id: str,
        *,
        every: int = 5,
        max_share: float = 0.05,
        write: Callable[[optuna.Study, Tracker, str], object] = log_study_plots,
        enabled: bool = True,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, but got every={every}.")
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], but got max_share={max_share}.")
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.every = every
        self.max_share = max_share
        self.write = write
        self.enabled = enabled
        self.refreshed_at = 0  # finished trials at the last refresh
        self.last_end = time.monotonic()
        self.last_cost = 0.0

    def due(self, finished: int) -> bool:
        if not self.enabled or finished - self.refreshed_at < self.every:
            return False
        return time.monotonic() - self.last_end >= self.last_cost / self.max_share

    def __call__(self, study: optuna.Study, _trial: FrozenTrial | None = None) -> None:
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        finished = len(study.get_trials(deepcopy=False, states=states))
        if not self.due(finished):
            return
        started = time.monotonic()
        try:
            self.write(study, self.tracker, self.parent_run_id)
        except Exception as error:  # a picture must never stop the search
            logger.warning("could not refresh the study plots: %s", error)
        self.last_end = time.monotonic()
        self.last_cost = self.last_end - started
        self.refreshed_at = finished


def refresher_for(objective: Objective) -> StudyPlotsRefresher:
    """The refresher of an `Objective`'s study run, off when its trials make no artifacts."""
    return StudyPlotsRefresher(
        objective.tracker, objective.parent_run_id, enabled=objective.settings.artifacts
    )
