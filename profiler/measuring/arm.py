"""What one callable of a family holds between rounds, and what a configuration's rounds measured."""
from __future__ import annotations

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


def prepare_arm(fn: Callable[[], object], timer: Timer, policy: Policy, context: Context = nullcontext,
                batch: int | None = None) -> Arm:
    """Warm fn up and choose its batch (a known batch skips both: the callable is warm already)."""
    if not batch:
        with context():
            batch = prepare_batch(fn, timer, policy)
    return Arm(fn, context, batch)
