"""`search.tracking.study_plots`: a study's Optuna plots (PNG and HTML), its summary, their refresher."""

from __future__ import annotations

from pathlib import Path

import optuna

from search.tracking.study_plots import PLOTS, StudyPlotsRefresher, summary_markdown, write_study_plots
from tests.helpers.pictures import assert_png


def _toy_study(n_trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("experiment", {"search": {"metric": "val/acc", "artifacts": True}})
    study.optimize(
        lambda t: t.suggest_int("width", 1, 9) / 10 + t.suggest_float("lr", 1e-4, 1e-1, log=True),
        n_trials=n_trials,
    )
    return study


def test_study_plots_are_valid_png_and_html(tmp_path: Path) -> None:
    result = write_study_plots(_toy_study(8), tmp_path)
    assert result.skipped == {}
    for name in PLOTS:
        assert_png(tmp_path / f"{name}.png")
    html = (tmp_path / "study_plots.html").read_text()
    assert html.count("Plotly.newPlot") == len(PLOTS)
    assert html.count("plotly.js v") <= 2  # plotly.js embedded once, for offline viewing


def test_study_plots_of_a_one_trial_study_are_drawn_without_failing(tmp_path: Path) -> None:
    result = write_study_plots(_toy_study(1), tmp_path)
    for path in result.written:
        if path.suffix == ".png":
            assert_png(path)
    assert (tmp_path / "study_plots.html").is_file()
    summary = (tmp_path / "summary.md").read_text()
    assert "1 complete" in summary and "trial-0000" in summary


def test_summary_lists_the_best_trials_first() -> None:
    study = _toy_study(6)
    lines = [line for line in summary_markdown(study).splitlines() if line.startswith("| 1 |")]
    assert lines and f"trial-{study.best_trial.number:04d}" in lines[0]


def test_refresher_waits_for_enough_trials_and_keeps_its_share_small() -> None:
    calls: list[int] = []
    study = _toy_study(2)

    def slow_write(s: optuna.Study, *_: object) -> None:
        calls.append(len(s.trials))

    refresher = StudyPlotsRefresher(None, "parent", every=2, max_share=0.05, write=slow_write)  # type: ignore[arg-type]
    refresher(study)
    assert calls == [2]
    refresher.last_cost = 1000.0  # the last refresh was slow: wait 20000 s before the next
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True), n_trials=2)
    refresher(study)
    assert calls == [2]
    refresher.last_cost = 0.0
    refresher(study)
    assert calls == [2, 4]
    off = StudyPlotsRefresher(None, "parent", write=slow_write, enabled=False)  # type: ignore[arg-type]
    off(study)
    assert calls == [2, 4]
