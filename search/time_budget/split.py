"""`tune --budget`: the arithmetic of one time budget split between the search and the reproduction.

Pure functions, no clock and no study: the caller passes what was measured.

- The reproduction's cost is estimated from what the search measured: every finished trial's seconds
  per training image per epoch (its wall time, which includes validation, building and logging,
  over the epochs it trained times its training images), scaled to the reproduction's epochs x
  training images for each of its K members (the current K best trials, each at its own speed), then
  divided by a member's speed-up over its trial (`LONG_RUN_SPEEDUP`, and `THREAD_EXPONENT` for more
  threads than the trial had: a CPU worker of `--workers 2` has one of two threads), and raised by
  `MARGIN`. Members trained at once (`Workload.at_once`, a worker process each) take rounds, each
  as long as its slowest member. Added: what each member and the end (the ensemble's choice, the
  test split, model files, registration) cost beside training, a share of an epoch per member,
  which grows with the data and network, and fixed seconds.
- The search's trials end `WRAP_UP_SECONDS` before the reproduction's share begins (the study's plots
  and summary are drawn after its last trial).
- Until `MIN_MEASURED` trials have completed, nothing is measured: `PRIOR_SHARE` of the budget is
  reserved.
- The reproduction never takes more than `MAX_REPRODUCE_SHARE` of the budget: a bigger workload is
  reduced before the search starts, and again after the search when what is left does not cover it:
  first fewer epochs, down to `MIN_EPOCH_SHARE` of those asked, then fewer members (a round of
  members at once fewer: with two at once, 4 members become 2, not 3; each again with as many epochs
  as fit), then fewer epochs still.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

# Calibrated on the headline's 60m runs (docs/performance.md): with the speed-up and the fixed costs
# below as measured, the margin covers the run-to-run spread of the speed-up (x1.61 to x1.85).
MARGIN = 0.08  # the training estimate is raised by this share (load, a slower champion)
# Beside its epochs each member costs what grows with its data, network and test-time views (its
# validation pass over the image and every TTA view listed, to choose a prefix, and its raw weights'
# pass) and a few seconds that do not (building it, its run). Counted per pass: (views + 1) x this
# share of one of its epochs. Measured with the headline's 5 transforms listed (6 views): ~100 s per
# member at ~60 s epochs (2026-12-06, the 50m run): 0.23 per pass. Since, inference runs x2.6 faster
# on one thread (channels_last, 128 inputs per pass: benchmarks/inference_batch.py) and the member no
# longer passes its kept views a second time (0.23 x 42/78 passes / 2.6 = 0.05). The fifth hour run
# then measured 13-17 s per member at 38-45 s epochs (0.05 per pass): 0.07 kept, the rest a margin
# for what is not inference.
MEMBER_EPOCHS_PER_PASS = 0.07  # per member and pass, in epochs of its own training
MEMBER_SECONDS = 5.0
# After training: the ensemble's choice (from the validation probabilities its members measured),
# each member's test passes (every view kept, and the plain and raw weights' passes reported), the
# model's files and its registration. Per member, (views + 1) x this share of one of its epochs with
# every thread: the 50m run's end took 200 s for 2 members that kept all 6 views, at ~53 s epochs
# with 2 threads: 0.25 per pass, when it also passed the validation split again and inference ran
# x2.3 slower on 2 threads (benchmarks/inference_batch.py): 0.12. The fifth hour run's end then took
# 38 s for 4 small members (0.02 per pass after the 15 s), and the sixth ended 4 minutes early, most
# of them this reserve. At 0.06 the seventh's end took 73 s for 4 wide members that kept more views
# (~0.04 per pass) and the hour ended 27 s early: 0.08 kept, twice the larger measured share, as this
# is the one step that comes after the budget's last deadline.
TAIL_EPOCHS_PER_PASS = 0.08  # per member and pass, in epochs of its own training with every thread
TAIL_SECONDS = 15.0
WRAP_UP_SECONDS = 10.0  # after the search's last trial: a pool's shutdown, the study's plots and summary
PRIOR_SHARE = 1 / 3  # reserved for the reproduction until trials have measured the speed
MIN_MEASURED = 3  # COMPLETE trials before the reserve is estimated from them
# The search always gets at least a quarter. In the headline's narrow space random search was within
# noise of its final best after a fifth of 25 minutes, TPE after half of it (docs/performance.md,
# "Search efficiency in the headline's narrow space"): later search minutes buy less than training.
MAX_REPRODUCE_SHARE = 3 / 4
# An ensemble member keeps at least half its epochs before a member is dropped: 17 epochs gave 0.9392
# on the headline's test split and 30 epochs 0.9401-0.9418, while 4 members of 21 epochs gained +0.26
# test over their best, and 2 members of 30 (the floor at 60% had dropped two) tested 0.9472 with 10
# of the hour's minutes unused (docs/performance.md, 2026-12-06). Later rounds take epochs back at
# the pace the first kept (search/reproduce/pace.py).
MIN_EPOCH_SHARE = 0.5
# A member trains a little faster per image than the trial it retrains, at the same threads: a 5-epoch
# trial on 30% of the images spends more per training image on validation and its fixed costs. On
# 2026-12-06 a one-thread member (24-48-128, 512 hidden) took 45.1 s per epoch of 54,000 images beside
# another, where its one-thread trial had taken 72 s for 5 x 16,200: x1.06 (docs/performance.md). In
# the hour runs, members two at once kept x0.93 of their trials' speed in one and x1.14-1.17 in the
# next (the trials' own speed varies with what trains beside them), so later rounds of members
# follow the pace the first kept (search/reproduce/pace.py) rather than a finer constant here.
LONG_RUN_SPEEDUP = 1.05
# Each doubling of a member's threads over the trial's multiplies that by 2 ** 0.3 = x1.23: a member
# of the widest net trained at ~1,160 img/s with one thread beside another and at ~1,430 with both
# cores to itself. So on 2 cores two members at once, a thread each, do x1.6 the work of one after
# another with 2 threads. (Earlier hour runs saw x1.61-1.85 over their trials with 2 threads, more
# than the x1.29 assumed here: the estimate errs on the safe side for members one after another.)
THREAD_EXPONENT = 0.3

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([hms])")
_FORM = "a duration like 90s, 45m, 1h30m or a number of seconds"


def parse_duration(text: str) -> float:
    """`90s`, `45m`, `1h30m`, `1.5h` or plain seconds (`3600`) -> seconds; `ValueError` otherwise."""
    compact = text.strip().lower().replace(" ", "")
    try:
        seconds = float(compact)
    except ValueError:
        seconds = _parse_units(compact, text)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be positive, but got {text!r}")
    return seconds


def _parse_units(compact: str, text: str) -> float:
    parts = _PART.findall(compact)
    units = [unit for _, unit in parts]
    rebuilt = "".join(number + unit for number, unit in parts)
    in_order = units == sorted(set(units), key="hms".index)  # each unit once, hours first
    if not parts or rebuilt != compact or not in_order:
        raise ValueError(f"takes {_FORM}, but got {text!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """`45s`, `2m30s`, `41m`, `1h05m`: whole seconds under 10 minutes, whole minutes above."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    if total < 600:
        minutes, rest = divmod(total, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


@dataclass(frozen=True)
class Workload:
    """What the reproduction trains: `members` trials, `epochs` each, on `images` training images,
    up to `at_once` members at a time (each in its own worker process)."""

    epochs: int
    images: int
    members: int = 1
    at_once: int = 1
    views: int = 1  # the image and each test-time transform listed (evaluate.tta): passes per image

    @property
    def passes(self) -> int:
        """Passes over the validation or test split beside training, per member: its views, then its
        raw weights' plain pass (EMA or SWA reports them)."""
        return self.views + 1

    @property
    def parallel(self) -> int:
        """Members that actually train at once."""
        return max(1, min(self.at_once, self.members))

    def describe(self, img_s: float | None) -> str:
        speed = f" at ~{img_s:,.0f} img/s" if img_s else ""
        members = f", {self.members} members" if self.members > 1 else ""
        at_once = f", {self.parallel} at once" if self.parallel > 1 else ""
        return f"{self.epochs} epochs x {self.images:,} images{speed}{members}{at_once}"


@dataclass(frozen=True)
class Speed:
    """One trial as measured: wall seconds, epochs trained, training images per epoch."""

    seconds: float
    epochs: int
    images: int

    @property
    def per_image(self) -> float:
        """Seconds per training image per epoch (validation and fixed costs included)."""
        return self.seconds / max(self.epochs * self.images, 1)


@dataclass(frozen=True)
class Threads:
    """Torch threads of one search trial and of the whole reproduction process (every core)."""

    trial: int
    total: int

    def speedup(self, at_once: int) -> float:
        """A member's speed per image over its trial's, with `at_once` members sharing the threads."""
        member = max(1, self.total // max(at_once, 1))
        return LONG_RUN_SPEEDUP * max(1.0, member / max(self.trial, 1)) ** THREAD_EXPONENT


@dataclass(frozen=True)
class Estimate:
    """The reproduction's reserve: its training (raised by the margin), its members' costs beside
    training and its `tail`, what follows the last member's training."""

    workload: Workload
    training: float  # seconds of training, before the margin
    img_s: float | None  # the training speed assumed (None: not measured yet, a share reserved)
    reserve: float
    tail: float = TAIL_SECONDS
    finish: float = TAIL_SECONDS  # after the last training step: the last round's members' costs and the tail

    def describe(self) -> str:
        return self.workload.describe(self.img_s)


def member_rates(speeds: Sequence[Speed], members: int) -> list[float]:
    """Seconds per image-epoch of each member: the K best trials' own, the slowest for missing ones."""
    rates = [speed.per_image for speed in speeds[:members]]
    return rates + [max(rates)] * (members - len(rates)) if rates else []


Speedup = float | Threads  # a member's speed per image over its trial's, or the threads that decide it


def estimate(workload: Workload, speeds: Sequence[Speed], speedup: Speedup = 1.0) -> Estimate | None:
    """The reproduction's reserve from the trials' speeds (best first), None without any speed.
    Members at once train in rounds, each as long as its slowest member."""
    rates = member_rates(speeds, workload.members)
    if not rates:
        return None
    at_once = workload.parallel
    factor = _factor(speedup, at_once)
    member_epochs = [rate * workload.images / factor for rate in rates]
    rounds = [member_epochs[start : start + at_once] for start in range(0, len(member_epochs), at_once)]
    epoch = sum(max(members) for members in rounds)  # one epoch of every member, round after round
    training = epoch * workload.epochs
    member_share = MEMBER_EPOCHS_PER_PASS * workload.passes
    tail_share = TAIL_EPOCHS_PER_PASS * workload.passes
    beside = member_share * epoch + MEMBER_SECONDS * len(rounds)
    tail = tail_share * sum(rates) * workload.images / _factor(speedup, 1) + TAIL_SECONDS  # every thread
    reserve = training * (1 + MARGIN) + beside + tail
    img_s = workload.epochs * workload.images * workload.members / training if training > 0 else None
    finish = member_share * max(rounds[-1]) + MEMBER_SECONDS + tail
    return Estimate(workload, training, img_s, reserve, tail, finish)


def _factor(speedup: Speedup, at_once: int) -> float:
    return speedup.speedup(at_once) if isinstance(speedup, Threads) else speedup


def planned(
    workload: Workload, speeds: Sequence[Speed], completed: int, budget: float, speedup: Speedup = 1.0
) -> Fit:
    """The reserve while the search runs: the prior share until `completed` trials reach
    `MIN_MEASURED`, then the estimate from the best trials' `speeds`, reduced to at most
    `MAX_REPRODUCE_SHARE` of the budget."""
    if completed < MIN_MEASURED:
        return Fit(prior(workload, budget))
    return fit(workload, speeds, MAX_REPRODUCE_SHARE * budget, speedup) or Fit(prior(workload, budget))


def prior(workload: Workload, budget: float) -> Estimate:
    """Before any trial has measured the speed: a share of the budget."""
    return Estimate(workload, 0.0, None, PRIOR_SHARE * budget)


@dataclass(frozen=True)
class Fit:
    """A workload that fits the time available, and what had to be reduced (None: nothing)."""

    estimate: Estimate
    reduced: str | None = None


def fit(workload: Workload, speeds: Sequence[Speed], available: float, speedup: Speedup = 1.0) -> Fit | None:
    """The largest workload within `available` seconds: fewer epochs down to `MIN_EPOCH_SHARE` of
    those asked, then fewer members (`member_counts`, each with as many epochs as fit), then fewer
    epochs (at least one). None without any measured speed."""
    full = estimate(workload, speeds, speedup)
    if full is None or full.reserve <= available:
        return None if full is None else Fit(full)
    floor = max(1, math.ceil(MIN_EPOCH_SHARE * workload.epochs))
    for members in member_counts(workload.members, workload.at_once):
        current = _epochs_within(replace(workload, members=members), speeds, available, speedup)
        if current.workload.epochs >= floor or members == 1:
            return Fit(current, _reduced(workload, current.workload, full.reserve, available))
    raise AssertionError("unreachable: one member always returns")


def member_counts(members: int, at_once: int) -> list[int]:
    """The numbers of members `fit` tries, most first: after `members`, each that takes a round of
    members at once away (3 members two at once train as long as 4, one of them alone), then one."""
    at_once = max(1, at_once)
    rounds = math.ceil(members / at_once)
    counts = [members, *(r * at_once for r in range(rounds - 1, 0, -1))]
    return counts if counts[-1] == 1 else [*counts, 1]


def _epochs_within(
    workload: Workload, speeds: Sequence[Speed], available: float, speedup: Speedup
) -> Estimate:
    """`workload` with as many of its epochs as fit in `available` seconds (at least one)."""
    current: Estimate = estimate(workload, speeds, speedup)  # type: ignore[assignment]
    if current.reserve <= available:
        return current
    fixed = current.reserve - current.training * (1 + MARGIN)
    per_epoch = current.training * (1 + MARGIN) / workload.epochs
    epochs = max(1, math.floor((available - fixed) / per_epoch)) if per_epoch > 0 else workload.epochs
    return estimate(replace(workload, epochs=min(epochs, workload.epochs)), speeds, speedup)  # type: ignore[return-value]


def _reduced(before: Workload, after: Workload, needed: float, available: float) -> str:
    changes = []
    if after.members != before.members:
        changes.append(
            f"{after.members} member{'s' if after.members > 1 else ''} instead of {before.members}"
        )
    if after.epochs != before.epochs:
        changes.append(f"{after.epochs} epoch{'s' if after.epochs > 1 else ''} instead of {before.epochs}")
    have = format_duration(available)
    return f"the reproduction would take ~{format_duration(needed)}, more than the ~{have} it can have: " + (
        ", ".join(changes)
    )


@dataclass(frozen=True)
class Split:
    """Seconds of the budget for the search and for the reproduction (after `elapsed` were spent)."""

    budget: float
    search: float
    reproduce: float

    def describe(self, estimate: Estimate) -> str:
        how = estimate.describe()
        if estimate.img_s is None:
            how += f"; {PRIOR_SHARE:.0%} of the budget until {MIN_MEASURED} trials have measured the speed"
        return (
            f"budget {format_duration(self.budget)}: search ~{format_duration(self.search)}, "
            f"reproduce ~{format_duration(self.reproduce)} ({how})"
        )


def split(budget: float, elapsed: float, reserve: float) -> Split:
    """The search gets what the reproduction's reserve leaves of the budget (never below zero)."""
    return Split(budget, max(0.0, budget - elapsed - reserve), reserve)


def search_times(started: float, budget: float, reserve: float, typical_trial: float) -> tuple[float, float]:
    """(claim_until, search_end): the search's trials end `WRAP_UP_SECONDS` before the reproduction's
    reserve begins, and a trial starts only while a typical one would end by then."""
    search_end = started + budget - reserve - WRAP_UP_SECONDS
    return search_end - typical_trial, search_end
