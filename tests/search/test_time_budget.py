"""`tune --budget`: the split's arithmetic (pure), the clocks, the `reproduce:` section, and the
command end to end on tiny digits: the search stops on its share, the reproduction runs, and the whole
command ends within the budget plus a tolerance for a loaded machine."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from search.experiment.spec import load_experiment, reproduction_spec, validate_experiment
from search.study.storage import open_storage
from search.study.study import find_study
from search.time_budget import split as tb
from search.time_budget.deadlines import SearchClock, SearchEndCallback, TrainingDeadline
from search.tracking import load_settings
from search.tracking import vocabulary as v
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.cli_helpers import run_cli

# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("45m", 2700), ("1h30m", 5400), ("1h", 3600), ("1.5h", 5400), ("3600", 3600),
     ("2m30s", 150), (" 60M ", 3600), ("0.5", 0.5)],
)  # fmt: skip
def test_durations_parse(text: str, seconds: float) -> None:
    assert tb.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "m", "30m1h", "5m5m", "1h 30", "1e", "inf", "nan"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration like 90s|must be positive"):
        tb.parse_duration(text)


@pytest.mark.parametrize("text", ["0", "0s", "-5", "0m0s"])
def test_non_positive_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        tb.parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (150, "2m30s"), (120, "2m"), (2460, "41m"), (3900, "1h05m"), (-3, "0s")],
)
def test_durations_format(seconds: float, text: str) -> None:
    assert tb.format_duration(seconds) == text


# --- the estimate --------------------------------------------------------------------------------

# a trial of 5 epochs on 16,200 images that took 40 s: 40 / 81,000 seconds per image-epoch
TRIAL = tb.Speed(seconds=40.0, epochs=5, images=16_200)
HEADLINE = tb.Workload(epochs=30, images=54_000, members=3)


def test_the_estimate_scales_the_trials_speed_to_the_reproduction() -> None:
    estimate = tb.estimate(tb.Workload(30, 54_000, 1), [TRIAL])
    assert estimate is not None
    training = 40.0 / 81_000 * 30 * 54_000  # 800 s
    assert estimate.training == pytest.approx(training)
    assert estimate.reserve == pytest.approx(training * (1 + tb.MARGIN) + tb.MEMBER_SECONDS + tb.TAIL_SECONDS)
    assert estimate.img_s == pytest.approx(81_000 / 40.0)
    assert estimate.describe() == "30 epochs x 54,000 images at ~2,025 img/s"


def test_each_member_at_its_own_speed_and_missing_ones_at_the_slowest() -> None:
    slow = tb.Speed(seconds=80.0, epochs=5, images=16_200)
    assert tb.member_rates([TRIAL, slow], 3) == [TRIAL.per_image, slow.per_image, slow.per_image]
    estimate = tb.estimate(HEADLINE, [TRIAL, slow])
    assert estimate is not None
    assert estimate.training == pytest.approx((40 + 80 + 80) / 81_000 * 30 * 54_000)
    assert tb.estimate(HEADLINE, []) is None


def test_more_threads_train_faster_by_the_measured_exponent() -> None:
    assert tb.thread_speedup(2, 1) == pytest.approx(2**tb.THREAD_EXPONENT)
    assert tb.thread_speedup(2, 2) == 1.0
    assert tb.thread_speedup(1, 2) == 1.0  # never slower than the trial
    fast = tb.estimate(HEADLINE, [TRIAL], speedup=2.0)
    plain = tb.estimate(HEADLINE, [TRIAL])
    assert fast is not None and plain is not None
    assert fast.training == pytest.approx(plain.training / 2)


def test_what_fits_keeps_the_workload() -> None:
    fitted = tb.fit(HEADLINE, [TRIAL], available=1e6)
    assert fitted is not None and fitted.reduced is None
    assert fitted.estimate.workload == HEADLINE


def test_short_time_drops_members_first_then_epochs() -> None:
    one_member = tb.estimate(tb.Workload(30, 54_000, 1), [TRIAL])
    assert one_member is not None
    fitted = tb.fit(HEADLINE, [TRIAL], available=one_member.reserve + 1)
    assert fitted is not None
    assert fitted.estimate.workload == tb.Workload(30, 54_000, 1)
    assert fitted.reduced is not None and "1 member instead of 3" in fitted.reduced
    assert "epochs instead" not in fitted.reduced

    half = tb.fit(HEADLINE, [TRIAL], available=one_member.reserve / 2)
    assert half is not None
    assert half.estimate.workload.members == 1
    assert 1 <= half.estimate.workload.epochs < 30
    assert half.estimate.reserve <= one_member.reserve / 2
    assert (
        half.reduced is not None and f"{half.estimate.workload.epochs} epochs instead of 30" in half.reduced
    )

    nothing = tb.fit(HEADLINE, [TRIAL], available=1.0)
    assert nothing is not None and nothing.estimate.workload == tb.Workload(1, 54_000, 1)  # at least 1 epoch


def test_before_enough_trials_a_share_is_reserved_then_the_estimate_capped_at_half() -> None:
    prior = tb.planned(HEADLINE, [TRIAL], completed=tb.MIN_MEASURED - 1, budget=3600)
    assert prior.estimate.img_s is None
    assert prior.estimate.reserve == pytest.approx(3600 * tb.PRIOR_SHARE)
    measured = tb.planned(HEADLINE, [TRIAL], completed=tb.MIN_MEASURED, budget=3600)
    assert measured.estimate.img_s is not None
    # 3 members of 800 s (2 with margin and fixed seconds: 1,865 s) would not fit in half an hour
    assert measured.estimate.reserve <= tb.MAX_REPRODUCE_SHARE * 3600
    assert measured.estimate.workload == tb.Workload(30, 54_000, 1)
    assert measured.reduced == (
        "the reproduction would take ~46m, more than the ~30m it can have: 1 member instead of 3"
    )


def test_the_split_and_the_search_times() -> None:
    split = tb.split(3600, 0, 1140)
    assert (split.search, split.reproduce) == (2460, 1140)
    estimate = tb.estimate(tb.Workload(30, 54_000, 1), [TRIAL])
    assert estimate is not None
    line = tb.split(3600, 0, estimate.reserve).describe(estimate)
    assert line.startswith(
        "budget 1h00m: search ~44m, reproduce ~16m (30 epochs x 54,000 images at ~2,025 img/s"
    )
    assert tb.split(60, 50, 30).search == 0
    claim_until, search_end = tb.search_times(started=1000, budget=3600, reserve=1140, typical_trial=45)
    assert search_end == 1000 + 3600 - 1140 - tb.WRAP_UP_SECONDS
    assert claim_until == search_end - 45


# --- the clocks ----------------------------------------------------------------------------------


def test_the_search_clock_is_shared_through_its_file(tmp_path: Path) -> None:
    writer, reader = SearchClock(tmp_path / "clock.json"), SearchClock(tmp_path / "clock.json")
    assert not reader.out_of_time() and not reader.past_end()  # no file yet: no limit
    now = time.time()
    writer.set(now - 1, now + 3600)
    assert writer.out_of_time() and not writer.past_end()  # the writer knows at once
    time.sleep(0.6)  # a reader looks again every half second
    assert reader.out_of_time() and not reader.past_end()
    writer.set(now - 2, now - 1)
    time.sleep(0.6)
    assert reader.past_end()


def test_a_trial_past_the_search_end_is_pruned_once_the_study_has_a_result(tmp_path: Path) -> None:
    clock = SearchClock(tmp_path / "clock.json")
    clock.set(time.time() - 2, time.time() - 1)  # the search's share is over
    study = optuna.create_study(direction="maximize")
    running = study.ask()
    callback = SearchEndCallback(clock, running)
    callback.on_train_batch_end()  # no COMPLETE trial yet: the reproduction needs this one
    study.tell(study.ask(), 0.5)
    time.sleep(1.05)  # the callback asks the storage at most once a second
    with pytest.raises(optuna.TrialPruned, match="the search's share of the time budget ran out"):
        callback.on_train_batch_end()


def test_training_stops_at_the_deadline_with_the_best_weights_so_far() -> None:
    from search.reproduce.retrain import train

    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 50}))
    deadline = TrainingDeadline(time.time())  # already due: stops after the first batch
    parts, best, _ = train(spec.run_config(), "val/acc", "maximize", callbacks=[deadline])
    assert best.best_value is not None  # Lightning validated the partial epoch
    assert parts.module.trainer.global_step == 1  # one batch, not 50 epochs
    assert best.best_epoch == 0
    note = deadline.note()
    assert note is not None and "epoch 1 of 50" in note


# --- the experiment's reproduce: section -----------------------------------------------------------


def test_the_reproduce_section_applies_to_the_reproduction_only(workdir: Path) -> None:
    raw = tiny_experiment(reproduce={"epochs": 3, "top_k": 2, "set": {"data.train_fraction": 0.5}})
    spec = load_experiment(write_experiment(workdir, raw))
    assert spec.data.train_fraction == 1.0 and spec.reproduce.epochs == 3
    assert "reproduce" not in spec.run_dict()
    reproduction = reproduction_spec(spec, ["data.train_fraction=0.25"])
    assert reproduction.data.train_fraction == 0.25  # --set wins over the section
    assert reproduction_spec(spec).data.train_fraction == 0.5


def test_the_reproduction_workload_follows_the_section() -> None:
    from search.time_budget.budgeted import reproduction_workload

    raw = tiny_experiment(reproduce={"epochs": 30, "top_k": 3, "set": {"data.train_fraction": 1}})
    raw["data"]["train_fraction"] = 0.3
    spec = validate_experiment(raw)
    workload = reproduction_workload(spec, reproduction_spec(spec), trial_images=16_200)
    assert workload == tb.Workload(epochs=30, images=54_000, members=3)
    plain = validate_experiment(tiny_experiment())
    assert reproduction_workload(plain, plain, trial_images=1_150) == tb.Workload(2, 1_150, 1)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"set": {"search.n_trials": 3}}, "reproduce.set key 'search.n_trials' must start with one of"),
        ({"set": {"data.train_fraction": 2}}, "train_fraction must be in (0, 1]"),
        ({"top_k": 0}, "reproduce.top_k"),
        ({"epoch": 3}, "unknown key 'reproduce.epoch'"),
    ],
)
def test_a_bad_reproduce_section_is_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], section: dict, message: str
) -> None:
    experiment = write_experiment(workdir, tiny_experiment(reproduce=section))
    result = run_cli(["check", str(experiment)], capsys)
    assert result.code == 2
    assert message in result.one_line_error()


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budget", "abc"], "--budget takes a duration like 90s, 45m, 1h30m or a number of seconds"),
        (["--budget", "10x"], "--budget takes a duration"),
        (["--budget", "0"], "--budget must be positive, but got '0'"),
        (["--budget=-5m"], "--budget takes a duration"),
        (["--budget=-60"], "--budget must be positive"),
        (["--budget", "45m", "--timeout", "60"], "give --budget or --timeout, not both"),
    ],
)
def test_a_bad_budget_is_one_line_and_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["tune", str(experiment), *flags], capsys)
    assert result.code == 2
    assert message in result.one_line_error()
    assert not (workdir / ".convtune" / "optuna.journal").exists()  # refused before anything ran


def test_reproduce_refuses_a_top_k_out_of_range(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = write_experiment(workdir, tiny_experiment())
    result = run_cli(["reproduce", str(experiment), "--top-k", "0"], capsys)
    assert result.code == 2
    assert "--top-k must be in [1, 20], but got 0." in result.one_line_error()


BUDGET = 50.0
TOLERANCE = 25.0  # a loaded 2-core machine: MLflow, registration and Python's own start-up vary


def test_tune_with_a_budget_stops_the_search_and_reproduces_within_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_experiment(name="tiny-budget", reproduce={"epochs": 2})
    raw["search"]["n_trials"] = 500  # far more than fit: the budget must stop the search
    experiment = write_experiment(workdir, raw)
    started = time.monotonic()
    result = run_cli(["tune", str(experiment), "--budget", f"{BUDGET:.0f}s", "--quiet"], capsys)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    assert elapsed < BUDGET + TOLERANCE, (elapsed, result.err)

    assert "budget 50s: search ~" in result.err  # the plan, at the start
    assert "budget 50s used: search " in result.err  # the actual split, at the end
    assert "registered models:/tiny-budget@champion (version 1)" in result.out

    study = find_study(open_storage(None), "tiny-budget")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 1 <= len(finished) < 500

    client = MlflowClient(load_settings().tracking_uri)
    parent = client.get_run(study.user_attrs[v.STUDY_ATTR_PARENT_RUN]).data.tags
    assert parent[v.TAG_BUDGET_SECONDS] == "50"
    assert parent[v.TAG_BUDGET_SEARCH_STOPPED] == "budget"
    assert parent[v.TAG_BUDGET_PLAN].startswith("budget 50s: search ~")
    search, reproduce, total = (
        float(parent[name])
        for name in (v.TAG_BUDGET_SEARCH_ACTUAL, v.TAG_BUDGET_REPRODUCE_ACTUAL, v.TAG_BUDGET_TOTAL_ACTUAL)
    )
    assert search + reproduce == pytest.approx(total, abs=0.2)
    assert search < BUDGET - float(parent[v.TAG_BUDGET_REPRODUCE_PLANNED]) + TOLERANCE
    assert total < BUDGET + TOLERANCE
    assert not list((workdir / ".convtune" / "budget").glob("*.json"))  # the clock's file is gone
