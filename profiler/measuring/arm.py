"""What one callable of a family holds between rounds, and what a configuration's rounds measured."""
from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

from hwprof.measuring.contention import WindowLoad
from hwprof.measuring.measure import PerCallEnergy, Policy, prepare_batch
from hwprof.measuring.meters.base import EnergyReading
from hwprof.measuring.stats import Summary
from hwprof.measuring.timing import Timer

Context = Callable[[], AbstractContextManager]


@dataclass
class Side:
    """One callable's samples over all kept rounds."""
    samples: list[float] = field(default_factory=list)          # seconds per call, one per batch
    round_medians: list[float] = field(default_factory=list)    # one per window
    joules: list[float] = field(default_factory=list)            # per metered window
    calls: list[int] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)


@dataclass
class Window:
    """One callable's window in a round: its per-call times (one per batch), calls, wall seconds, joules."""
    arm: "Arm"
    samples: list[float]
    calls: int
    wall: float
    joules: float | None
    recorded: bool = False          # the probing call, reused as the first window (already paid for)
    warm_s: float = 0.0             # the unmeasured call before the window (Arm.warm_each_round), paid for too


@dataclass
class RoundsMeasurement(PerCallEnergy):
    config: Side
    reference: Side | None
    batch: int
    summary: Summary                  # median and CI over round medians; IQR over all samples
    hef_time: float | None
    hef_time_ci: tuple[float, float] | None
    hef_energy_ci: tuple[float, float] | None
    energy: EnergyReading             # the configuration's joules and the window(s) they came from
    calls_in_window: int
    window_s: float
    load: WindowLoad | None
    flags: list[str]
    sampled_s: float
    flush_energy_j: float = 0.0
    paired_energy_ratio: float | None = None     # reference J/call over configuration J/call, same rounds
    reference_batch: int = 0
    discarded_rounds: int = 0                    # rounds measured again: the machine was busy or slow
    cost_s: float = 0.0                          # what the configuration cost the run (Arm.cost_s)


@dataclass
class Arm:
    """One callable of a family, with what its kept rounds gave."""
    fn: Callable[[], object]
    context: Context = nullcontext
    batch: int = 1
    side: Side = field(default_factory=Side)
    ratios: list[float] = field(default_factory=list)           # per kept round: hef against the reference
    energy_ratios: list[float] = field(default_factory=list)    # per kept metered round
    ref_joules: float = 0.0            # the neighbouring reference windows' joules and calls, for paired energy
    ref_calls: int = 0
    loads: list[WindowLoad] = field(default_factory=list)
    spent_s: float = 0.0               # its windows, and as long again of its reference's when paired
    discarded: int = 0
    done: bool = False
    error: BaseException | None = None
    energy: EnergyReading | None = None
    energy_calls: int = 0              # the calls its energy reading covers
    energy_window_s: float = 0.0       # a long energy window's seconds, when it needed one
    flush_j: float = 0.0
    # What the callable costs the run: its probing call, warm-up, its windows (kept or dropped) and its share
    # of the reference windows beside them. A configuration stops before a round that would take it past
    # cap_s, twice its budget plus one call, however long one call is (measuring.rounds).
    call_s: float = 0.0                # one call, from the probe (0: unknown)
    cost_s: float = 0.0
    cap_s: float = float("inf")
    first: Window | None = None        # the probing call, as its first window (calls longer than a window)
    last_round_s: float = 0.0          # what its last round cost it (the estimate of the next one's)
    key: str = ""                      # who it is, for a journal of its rounds (the runner's config_id)
    # One unmeasured call before each window: for a callable whose window holds a single call and whose
    # first call after other work is not its steady state (a model step, whose heap and caches the kernels
    # of other families took over between its rounds).
    warm_each_round: bool = False

    def warm_up(self, timer: Timer) -> float:
        """The unmeasured call before a window, if it takes one: its seconds (0.0 when none)."""
        return timer.time_batch(self.fn, 1) if self.warm_each_round else 0.0

    def window_cost(self, round_s: float) -> float:
        """What a window of this callable costs before any was measured: at least one call, and its warm-up."""
        return max(round_s, self.call_s) + (self.call_s if self.warm_each_round else 0.0)


# A probing call at least this long stands in for the configuration's first window: the one-time costs a
# first call carries (a oneDNN primitive's creation and JIT, first touch of the output) measured 1-32 ms here
# once the libraries are loaded, a few percent of it at most; a shorter one might be mostly those costs.
LONG_CALL_S = 1.0


def prepare_arm(fn: Callable[[], object], timer: Timer, policy: Policy, context: Context = nullcontext,
                batch: int | None = None, probe=None) -> Arm:
    """Warm fn up and choose its batch (a known batch skips both: the callable is warm already).

    `probe` (measuring.probe.ProbeResult) is the case's first call. A call of LONG_CALL_S or more needs no
    warm-up (the probe did the one-time work; its batch is one call) and the probe becomes its first window:
    a window would hold that one call anyway, and a kernel of seconds a call must not be called again just to
    be warmed up. Its cap is then twice the budget plus that one call (measuring.rounds)."""
    call_s = probe.seconds if probe is not None else 0.0
    long_call = probe is not None and not batch and call_s >= max(LONG_CALL_S, policy.round_s)
    cost = call_s
    if long_call:
        batch = 1
    elif not batch:
        t0 = time.perf_counter()
        with context():
            batch = prepare_batch(fn, timer, policy)
        cost += time.perf_counter() - t0
    arm = Arm(fn, context, batch, call_s=call_s, cost_s=cost,
              cap_s=2 * policy.budget_s + call_s if probe is not None else float("inf"))
    if long_call:
        arm.first = Window(arm, [call_s], 1, call_s, probe.joules)
    return arm
