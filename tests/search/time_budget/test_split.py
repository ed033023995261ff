"""`search.time_budget.split`: the arithmetic of `tune --budget` (pure): durations, the reproduction's
estimate, what fits, and the split between search and reproduction."""

from __future__ import annotations

import pytest

from search.time_budget import split as tb


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
