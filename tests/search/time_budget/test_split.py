"""`search.time_budget.split`: the arithmetic of `tune --budget` (pure): durations, the reproduction's
estimate, what fits, and the split between search and reproduction."""

from __future__ import annotations

import math
from dataclasses import replace

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
    beside = (
        ((tb.MEMBER_EPOCHS_PER_PASS * 2) + (tb.TAIL_EPOCHS_PER_PASS * 2)) * training / 30
        + tb.MEMBER_SECONDS
        + tb.TAIL_SECONDS
    )
    assert estimate.reserve == pytest.approx(training * (1 + tb.MARGIN) + beside)
    assert estimate.tail == pytest.approx((tb.TAIL_EPOCHS_PER_PASS * 2) * training / 30 + tb.TAIL_SECONDS)
    assert estimate.img_s == pytest.approx(81_000 / 40.0)
    assert estimate.describe() == "30 epochs x 54,000 images at ~2,025 img/s"


def test_test_time_views_raise_what_members_and_the_end_cost_beside_training() -> None:
    plain = tb.estimate(tb.Workload(30, 54_000, 2), [TRIAL])
    six_views = tb.estimate(tb.Workload(30, 54_000, 2, views=6), [TRIAL])  # the image and 5 transforms
    assert plain is not None and six_views is not None
    assert six_views.training == plain.training  # training is the same
    epoch = plain.training / 60  # one member's epoch (two members, one after another)
    assert six_views.tail - plain.tail == pytest.approx(tb.TAIL_EPOCHS_PER_PASS * 5 * 2 * epoch)
    extra = (six_views.reserve - six_views.tail) - (plain.reserve - plain.tail)
    assert extra == pytest.approx(tb.MEMBER_EPOCHS_PER_PASS * 5 * 2 * epoch)  # beside, each member
    assert six_views.finish - plain.finish == pytest.approx(
        (tb.MEMBER_EPOCHS_PER_PASS + tb.TAIL_EPOCHS_PER_PASS * 2) * 5 * epoch
    )


def test_each_member_at_its_own_speed_and_missing_ones_at_the_slowest() -> None:
    slow = tb.Speed(seconds=80.0, epochs=5, images=16_200)
    assert tb.member_rates([TRIAL, slow], 3) == [TRIAL.per_image, slow.per_image, slow.per_image]
    estimate = tb.estimate(HEADLINE, [TRIAL, slow])
    assert estimate is not None
    assert estimate.training == pytest.approx((40 + 80 + 80) / 81_000 * 30 * 54_000)
    assert tb.estimate(HEADLINE, []) is None


def test_a_member_trains_faster_than_its_trial_and_more_so_with_more_threads() -> None:
    assert tb.Threads(1, 1).speedup(1) == pytest.approx(tb.LONG_RUN_SPEEDUP)
    assert tb.Threads(1, 2).speedup(1) == pytest.approx(tb.LONG_RUN_SPEEDUP * 2**tb.THREAD_EXPONENT)
    assert tb.Threads(1, 2).speedup(2) == pytest.approx(tb.LONG_RUN_SPEEDUP)  # a thread each
    assert tb.Threads(2, 4).speedup(2) == pytest.approx(tb.LONG_RUN_SPEEDUP)
    assert tb.Threads(2, 1).speedup(1) == pytest.approx(tb.LONG_RUN_SPEEDUP)  # never slower than the trial
    fast = tb.estimate(HEADLINE, [TRIAL], speedup=2.0)
    plain = tb.estimate(HEADLINE, [TRIAL])
    assert fast is not None and plain is not None
    assert fast.training == pytest.approx(plain.training / 2)
    threads = tb.estimate(HEADLINE, [TRIAL], speedup=tb.Threads(1, 2))
    assert threads is not None
    assert threads.training == pytest.approx(plain.training / tb.Threads(1, 2).speedup(1))


def test_members_at_once_train_in_rounds_each_as_long_as_its_slowest() -> None:
    slow = tb.Speed(seconds=80.0, epochs=5, images=16_200)
    one_by_one = tb.estimate(HEADLINE, [TRIAL, slow, TRIAL], speedup=tb.Threads(1, 2))
    two_at_once = tb.estimate(replace(HEADLINE, at_once=2), [TRIAL, slow, TRIAL], speedup=tb.Threads(1, 2))
    assert one_by_one is not None and two_at_once is not None

    def epoch(speed: tb.Speed, at_once: int) -> float:  # a member's epoch, with 2 threads or 1 of 2
        return speed.per_image * 54_000 / tb.Threads(1, 2).speedup(at_once)

    assert one_by_one.training == pytest.approx((2 * epoch(TRIAL, 1) + epoch(slow, 1)) * 30)
    # rounds: the first two members together (as long as the slow one), then the third alone
    assert two_at_once.training == pytest.approx((epoch(slow, 2) + epoch(TRIAL, 2)) * 30)
    four = [TRIAL, slow, TRIAL, TRIAL]  # two full rounds: together the cores do more than either thread alone
    four_at_once = tb.estimate(replace(HEADLINE, members=4, at_once=2), four, speedup=tb.Threads(1, 2))
    four_one_by_one = tb.estimate(replace(HEADLINE, members=4), four, speedup=tb.Threads(1, 2))
    assert four_at_once is not None and four_one_by_one is not None
    assert four_at_once.training < four_one_by_one.training
    assert two_at_once.describe().endswith(", 3 members, 2 at once")
    assert two_at_once.tail == one_by_one.tail  # the end runs in this process, with every thread
    # after the last step: the last round's member (the third, alone) finishing, then the tail
    last_member = (tb.MEMBER_EPOCHS_PER_PASS * 2) * epoch(TRIAL, 2) + tb.MEMBER_SECONDS
    assert two_at_once.finish == pytest.approx(last_member + two_at_once.tail)
    assert replace(HEADLINE, members=1, at_once=2).parallel == 1


def test_what_fits_keeps_the_workload() -> None:
    fitted = tb.fit(HEADLINE, [TRIAL], available=1e6)
    assert fitted is not None and fitted.reduced is None
    assert fitted.estimate.workload == HEADLINE


def test_short_time_cuts_epochs_to_the_floor_then_members_then_epochs() -> None:
    floor = math.ceil(tb.MIN_EPOCH_SHARE * 30)

    def reserve(epochs: int, members: int) -> float:
        estimate = tb.estimate(tb.Workload(epochs, 54_000, members), [TRIAL])
        assert estimate is not None
        return estimate.reserve

    fewer_epochs = tb.fit(HEADLINE, [TRIAL], available=reserve(24, 3) + 1)
    assert fewer_epochs is not None
    assert fewer_epochs.estimate.workload == tb.Workload(24, 54_000, 3)
    assert fewer_epochs.reduced is not None and fewer_epochs.reduced.endswith(": 24 epochs instead of 30")

    under_the_floor = reserve(floor, 3) - 1  # 3 members would need fewer epochs than the floor
    two_members = tb.fit(HEADLINE, [TRIAL], available=under_the_floor)
    assert two_members is not None
    workload = two_members.estimate.workload
    assert workload.members == 2 and floor <= workload.epochs < 30  # the epochs come back up
    assert two_members.estimate.reserve <= under_the_floor < reserve(workload.epochs + 1, 2)
    assert two_members.reduced is not None
    assert f"2 members instead of 3, {workload.epochs} epochs instead of 30" in two_members.reduced

    half = tb.fit(HEADLINE, [TRIAL], available=reserve(30, 1) / 2)
    assert half is not None
    assert half.estimate.workload.members == 1  # a member under the floor is still one member
    assert 1 <= half.estimate.workload.epochs < floor
    assert half.estimate.reserve <= reserve(30, 1) / 2
    assert half.reduced is not None
    assert f"1 member instead of 3, {half.estimate.workload.epochs} epochs instead of 30" in half.reduced

    nothing = tb.fit(HEADLINE, [TRIAL], available=1.0)
    assert nothing is not None and nothing.estimate.workload == tb.Workload(1, 54_000, 1)  # at least 1 epoch


@pytest.mark.parametrize(
    ("members", "at_once", "counts"),
    [
        (4, 2, [4, 2, 1]),
        (5, 2, [5, 4, 2, 1]),
        (3, 1, [3, 2, 1]),
        (6, 3, [6, 3, 1]),
        (1, 2, [1]),
        (2, 2, [2, 1]),
    ],
)
def test_fewer_members_means_a_round_of_members_at_once_fewer(
    members: int, at_once: int, counts: list[int]
) -> None:
    assert tb.member_counts(members, at_once) == counts


def test_two_at_once_four_members_under_the_floor_become_two_not_three() -> None:
    four = replace(HEADLINE, members=4, at_once=2)
    floor = math.ceil(tb.MIN_EPOCH_SHARE * 30)
    speedup = tb.Threads(1, 2)
    below = tb.estimate(replace(four, epochs=floor), [TRIAL], speedup)
    three = tb.estimate(replace(four, members=3, epochs=floor), [TRIAL], speedup)
    assert below is not None and three is not None and three.reserve < below.reserve
    fitted = tb.fit(four, [TRIAL], available=(three.reserve + below.reserve) / 2, speedup=speedup)
    assert fitted is not None  # 3 members would fit the floor, but train as long as 4: 2 take more epochs
    assert fitted.estimate.workload.members == 2 and fitted.estimate.workload.epochs > floor


def test_before_enough_trials_a_share_is_reserved_then_the_estimate_capped() -> None:
    prior = tb.planned(HEADLINE, [TRIAL], completed=tb.MIN_MEASURED - 1, budget=3600)
    assert prior.estimate.img_s is None
    assert prior.estimate.reserve == pytest.approx(3600 * tb.PRIOR_SHARE)
    measured = tb.planned(HEADLINE, [TRIAL], completed=tb.MIN_MEASURED, budget=3000)
    assert measured.estimate.img_s is not None
    # 3 members of 800 s (2,592 s with margin, ~2,660 s with members' and tail's costs) exceed three
    # quarters of 50 minutes; 25 epochs fit
    assert measured.estimate.reserve <= tb.MAX_REPRODUCE_SHARE * 3000
    assert measured.estimate.workload == tb.Workload(25, 54_000, 3)
    assert measured.reduced == (
        "the reproduction would take ~44m, more than the ~38m it can have: 25 epochs instead of 30"
    )


def test_the_split_and_the_search_times() -> None:
    split = tb.split(3600, 0, 1140)
    assert (split.search, split.reproduce) == (2460, 1140)
    estimate = tb.estimate(tb.Workload(30, 54_000, 1), [TRIAL])
    assert estimate is not None
    line = tb.split(3600, 0, estimate.reserve).describe(estimate)
    assert line.startswith(
        "budget 1h00m: search ~45m, reproduce ~15m (30 epochs x 54,000 images at ~2,025 img/s"
    )
    assert tb.split(60, 50, 30).search == 0
    claim_until, search_end = tb.search_times(started=1000, budget=3600, reserve=1140, typical_trial=45)
    assert search_end == 1000 + 3600 - 1140 - tb.WRAP_UP_SECONDS
    assert claim_until == search_end - 45
