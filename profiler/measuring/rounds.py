"""Paired, interleaved measurement: a configuration and its reference alternate in short rounds.

hef is a ratio, so it is measured as one: in every round the reference and the configuration each get
a short window (their order alternating), and hef comes from the per-round ratios, with a distribution-
free interval over rounds. Drift common to both (clock, a neighbour, a VM's phase) cancels within a round;
the time interval too is taken over round medians, so it covers variation between rounds, not only the
samples of one window. Energy is metered around the configuration's windows (and the reference's, for a
paired hef_energy) when the meter resolves windows that short; otherwise one long window follows.
"""
from __future__ import annotations

import math
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

from hwprof.measuring.contention import LoadProbe, WindowLoad
from hwprof.measuring.measure import MIN_SAMPLES_HARD, PerCallEnergy, Policy, flush_energy, prepare_batch
from hwprof.measuring.meters.base import EnergyMeter, EnergyReading
from hwprof.measuring.stats import Summary, median_ci, summarize
from hwprof.measuring.timing import Timer

ROUND_RESOLUTIONS = 20      # a metered round must last this many meter updates to be summed
MIN_PROBE_S = 0.2           # CPU times tick every 10 ms: shorter probes say nothing about contention


@dataclass
class Side:
    """One callable's samples over all rounds."""
    samples: list[float] = field(default_factory=list)          # seconds per call, one per batch
    round_medians: list[float] = field(default_factory=list)
    joules: list[float] = field(default_factory=list)            # per metered round (paired energy)
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


def run_window(fn, batch: int, timer: Timer, seconds: float) -> tuple[list[float], int, float]:
    """Batches of fn for `seconds` (at least one): (per-call times, calls, wall seconds)."""
    out, calls = [], 0
    t0 = time.perf_counter()
    while True:
        out.append(timer.time_batch(fn, batch) / batch)
        calls += batch
        if time.perf_counter() - t0 >= seconds:
            return out, calls, time.perf_counter() - t0


def measure_rounds(fn: Callable[[], object], timer: Timer, meter: EnergyMeter, policy: Policy,
                   ref_fn: Callable[[], object] | None = None, probe: LoadProbe | None = None,
                   context: Callable[[], AbstractContextManager] = nullcontext,
                   ref_context: Callable[[], AbstractContextManager] = nullcontext,
                   ref_batch: int | None = None) -> RoundsMeasurement:
    """Measure fn in rounds, alternating with ref_fn when given. Stops when the interval over rounds (of
    hef when paired, of the time otherwise) is within the CI target, at least `rounds` rounds and the
    window minimum are done, or the budget is spent."""
    with context():
        batch = prepare_batch(fn, timer, policy)
    if ref_fn is not None and not ref_batch:      # a reference already warm from the last configuration
        with ref_context():                       # keeps its batch and skips the warm-up
            ref_batch = prepare_batch(ref_fn, timer, policy)
    per_round_energy = meter.source != "none" and policy.round_s >= ROUND_RESOLUTIONS * meter.resolution_s
    need_window = max(policy.min_window_s, meter.min_window_s)
    round_s = max(policy.round_s, (need_window if per_round_energy else policy.min_window_s) / policy.rounds)
    cfg, ref = Side(), (Side() if ref_fn is not None else None)
    t_start = time.perf_counter()
    if probe is not None:          # one probe around all rounds: a neighbour during the reference's windows
        probe.start()              # distorts hef as much as one during the configuration's

    def one(side: Side, f, b: int, metered: bool) -> None:
        with (context if side is cfg else ref_context)():
            if metered:
                meter.start()
            samples, calls, wall = run_window(f, b, timer, round_s)
            metered_reading = meter.stop() if metered else None
        if metered_reading is not None:
            side.joules.append(metered_reading.energy_j if metered_reading.energy_j is not None else math.nan)
        side.samples += samples
        side.round_medians.append(statistics.median(samples))
        side.calls.append(calls)
        side.windows.append(wall)

    k = 0
    while True:
        order = [(cfg, fn, batch)] + ([(ref, ref_fn, ref_batch)] if ref is not None else [])
        if k % 2 and ref is not None:
            order.reverse()                   # reference first in even rounds, second in odd ones
        for side, f, b in order:
            one(side, f, b, per_round_energy)
        k += 1
        if k < policy.rounds or len(cfg.samples) < MIN_SAMPLES_HARD:
            continue
        if time.perf_counter() - t_start >= policy.budget_s:
            break
        target = summarize(_ratios(ref, cfg) if ref is not None else cfg.round_medians, policy.confidence)
        if target.exact and target.rel_ci_halfwidth <= policy.ci_target:
            break
    sampled = time.perf_counter() - t_start
    load = probe.stop() if probe is not None else None
    if load is not None and load.window_s < MIN_PROBE_S:
        load = None

    summary = _summary(cfg, policy.confidence)
    ratios = _ratios(ref, cfg) if ref is not None else None
    hef_summary = summarize(ratios, policy.confidence) if ratios else None
    hef = hef_summary.median if hef_summary else None
    hef_ci = (hef_summary.ci_low, hef_summary.ci_high) if hef_summary and hef_summary.exact else None
    flags = []
    if summary.rel_ci_halfwidth > policy.ci_target or (
            hef_ci is not None and hef_summary.rel_ci_halfwidth > policy.ci_target):
        flags.append("noisy")
    if not summary.exact:
        flags.append("few-repeats")

    hef_energy_ci = paired_energy = None
    if per_round_energy and not any(math.isnan(j) for j in cfg.joules):
        reading = EnergyReading(sum(cfg.joules), sum(cfg.windows), meter.source)
        calls = sum(cfg.calls)
        if ref is not None and ref.joules and not any(math.isnan(j) for j in ref.joules):
            e_ratios = [(rj / rc) / (cj / cc) for rj, rc, cj, cc in zip(ref.joules, ref.calls, cfg.joules, cfg.calls)
                        if cj > 0 and rj > 0]
            if e_ratios:
                paired_energy = (sum(ref.joules) / sum(ref.calls)) / (sum(cfg.joules) / calls)
                hef_energy_ci = median_ci(e_ratios, policy.confidence)
    elif meter.source != "none":
        # the meter cannot resolve short rounds: one long window of the configuration alone
        with context():
            meter.start()
            samples, calls, wall = run_window(fn, batch, timer, need_window)
            reading = meter.stop()
        cfg.samples += samples
        sampled += wall
    else:
        reading = EnergyReading(None, sum(cfg.windows), "none")
        calls = sum(cfg.calls)
    if reading.energy_j is not None and reading.window_s < meter.min_window_s:
        flags.append("short-window")
    flush_j = flush_energy(timer, meter, calls) if timer.flushes and reading.energy_j is not None else 0.0
    return RoundsMeasurement(cfg, ref, batch, summary, hef, hef_ci, hef_energy_ci, reading, calls,
                             reading.window_s, load, flags, sampled, flush_j, paired_energy, ref_batch or 0)


def _ratios(ref: Side, cfg: Side) -> list[float]:
    """Per-round hef: the reference's round median over the configuration's."""
    return [r / c for r, c in zip(ref.round_medians, cfg.round_medians) if c > 0]


def _summary(side: Side, confidence: float) -> Summary:
    """Median and its interval over round medians (between-round variation); IQR and n over all samples."""
    over_rounds = summarize(side.round_medians, confidence)
    pooled = summarize(side.samples, confidence)
    return Summary(over_rounds.median, over_rounds.ci_low, over_rounds.ci_high, pooled.rel_iqr, pooled.n,
                   over_rounds.exact)
