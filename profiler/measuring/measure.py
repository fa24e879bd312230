"""Measure one callable: warm up, batch, repeat until the median's CI meets a target, one energy window.

Returns raw samples and the energy reading; statistics are computed by `stats`, presentation elsewhere.
Only the sampling loop is inside the energy window, so warm-up and calibration never pollute joules.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from hwprof.measuring.meters.base import EnergyMeter, EnergyReading
from hwprof.measuring.stats import Summary, summarize
from hwprof.measuring.timing import Timer

MIN_SAMPLES_HARD = 3        # even a kernel slower than the whole budget gets three timed calls


@dataclass(frozen=True)
class Policy:
    budget_s: float = 2.0         # per configuration, sampling loop only
    ci_target: float = 0.02       # relative half-width of the 95% CI of the median
    min_samples: int = 10
    warmup_s: float = 0.1
    min_batch_s: float = 0.002    # a batch long enough that timer overhead (~100 ns) is negligible
    min_window_s: float = 1.0     # one sampling/energy window per configuration lasts at least this long
    # The interval is computed at 97.5% nominal because sampling stops when it looks narrow: a seeded
    # simulation of this exact rule (tests/measuring/test_stopping.py) shows a nominal 95% interval covers
    # the true median only ~93% of the time under that optional stopping, and 97.5% covers >= 95%.
    confidence: float = 0.975
    rounds: int = 8               # paired rounds at least (measuring.rounds); the interval is over rounds
    round_s: float = 0.1          # each side's window in a round (longer where the energy meter needs it)
    span_s: float = 120.0         # estimated sampling of one block of interleaved passes (running.blocks)


class StopRule:
    """Whether the CI of the median is narrow enough to stop: checked at min_samples and then at ~10% steps
    of the sample count (re-checking every sample would make optional stopping worse, and cost more)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.next_check = policy.min_samples
        self.converged = False

    def update(self, samples: list[float]) -> bool:
        n = len(samples)
        if n >= self.next_check:
            self.converged = summarize(samples, self.policy.confidence).rel_ci_halfwidth <= self.policy.ci_target
            self.next_check = n + max(1, n // 10)
        return self.converged


class PerCallEnergy:
    """Joules per call and mean power from a measurement's energy reading (flush joules taken out)."""
    energy: EnergyReading
    calls_in_window: int
    flush_energy_j: float

    @property
    def energy_per_call_j(self) -> float | None:
        if self.energy.energy_j is None or self.calls_in_window == 0:
            return None
        return max(0.0, self.energy.energy_j - self.flush_energy_j) / self.calls_in_window

    @property
    def power_w(self) -> float | None:
        if self.energy.energy_j is None or self.energy.window_s <= 0:
            return None
        return self.energy.energy_j / self.energy.window_s


@dataclass
class Measurement(PerCallEnergy):
    samples: list[float]              # seconds per call, one value per batch
    batch: int
    calls_in_window: int
    window_s: float                   # the energy window the joules and calls_in_window come from
    energy: EnergyReading
    summary: Summary
    warmup_s: float
    flags: list[str] = field(default_factory=list)
    sampled_s: float = 0.0            # all sampling time (more than window_s when the meter asked for a retry)
    flush_energy_j: float = 0.0       # joules of the cache flushes inside the window, measured apart


def calibrate_batch(fn: Callable[[], object], timer: Timer, min_batch_s: float, n: int = 1,
                    cap: int = 1 << 20) -> int:
    """Smallest batch (from n, growing) whose duration reaches min_batch_s (1 for slow kernels)."""
    while n < cap:
        t = timer.time_batch(fn, n)
        if t >= min_batch_s:
            return n
        n = n * 2 if t <= 0 else max(n * 2, min(cap, math.ceil(n * min_batch_s / t)))
    return cap


def warm_up(fn: Callable[[], object], timer: Timer, seconds: float) -> float:
    """Run timed single calls for `seconds` (at least one); return the last call's duration."""
    t0 = time.perf_counter()
    while True:
        last = timer.time_batch(fn, 1)
        if time.perf_counter() - t0 >= seconds:
            return last


def prepare_batch(fn: Callable[[], object], timer: Timer, policy: Policy) -> int:
    """Warm fn up, then choose its batch: the warm-up's last call predicts it, one calibration batch
    confirms it (none for kernels slower than a batch)."""
    last = warm_up(fn, timer, policy.warmup_s)
    if last >= policy.min_batch_s:
        return 1
    guess = math.ceil(policy.min_batch_s / last) if last > 0 else 1
    return calibrate_batch(fn, timer, policy.min_batch_s, guess)


def run_window(fn, batch: int, timer: Timer, seconds: float) -> tuple[list[float], int, float]:
    """Batches of fn for `seconds` (at least one): (per-call times, calls, wall seconds)."""
    out, calls = [], 0
    t0 = time.perf_counter()
    while True:
        out.append(timer.time_batch(fn, batch) / batch)
        calls += batch
        if time.perf_counter() - t0 >= seconds:
            return out, calls, time.perf_counter() - t0


def measure(fn: Callable[[], object], timer: Timer, meter: EnergyMeter, policy: Policy) -> Measurement:
    """One configuration alone in one window (peer checks and simple callers; the runner uses rounds)."""
    t_warm = time.perf_counter()
    batch = prepare_batch(fn, timer, policy)
    warmup = time.perf_counter() - t_warm

    samples: list[float] = []
    calls = 0
    sampled = 0.0
    reading = None
    for _attempt in range(2):          # a second window only if the meter asks (counter read zero)
        # read on every attempt: after a retry the meter may have switched mode (counter -> sampling) and
        # need a longer window than the first
        min_window = max(policy.min_window_s, meter.min_window_s)
        meter.start()
        t0 = time.perf_counter()
        rule = StopRule(policy)
        while True:
            samples.append(timer.time_batch(fn, batch) / batch)
            calls += batch
            elapsed = time.perf_counter() - t0
            n = len(samples)
            converged = rule.update(samples)
            if elapsed < min_window or n < MIN_SAMPLES_HARD:
                continue
            if converged or elapsed >= policy.budget_s:
                break
        reading = meter.stop()
        window = time.perf_counter() - t0
        sampled += window
        if not reading.retry:
            break
        calls = 0                       # joules and calls both come from the *last* window only

    summary = summarize(samples, policy.confidence)
    flags = []
    if summary.rel_ci_halfwidth > policy.ci_target:
        flags.append("noisy")
    if not summary.exact:
        flags.append("few-repeats")
    if reading.energy_j is not None and reading.window_s < meter.min_window_s:
        flags.append("short-window")
    flush_j = flush_energy(timer, meter, calls) if timer.flushes and reading.energy_j is not None else 0.0
    return Measurement(samples, batch, calls, window, reading, summary, warmup, flags, sampled, flush_j)


def flush_energy(timer: Timer, meter: EnergyMeter, calls: int) -> float:
    """Joules that `calls` cache flushes cost, measured alone in a window of their own (long enough for the
    meter), so the flushes done inside the measurement window can be taken out of the energy per call."""
    meter.start()
    t0 = time.perf_counter()
    flushes = 0
    chunk = max(1, min(calls, 1000))
    while flushes == 0 or time.perf_counter() - t0 < max(meter.min_window_s, 0.05):
        timer.flush_only(chunk)
        flushes += chunk
    reading = meter.stop()
    if reading.energy_j is None:
        return 0.0
    return reading.energy_j / flushes * calls


def device_warmup(device: torch.device, seconds: float) -> None:
    """Busy the device until clocks settle before the first configuration."""
    n = 2048 if device.type == "cuda" else 256
    a = torch.randn(n, n, device=device)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(8):
            a @ a
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def idle_power(meter: EnergyMeter, seconds: float) -> float | None:
    """Mean power over a window with nothing running (at least the meter's minimum window)."""
    if meter.source == "none" or seconds <= 0:
        return None
    meter.start()
    time.sleep(max(seconds, meter.min_window_s))
    reading = meter.stop()
    if reading.energy_j is None or reading.window_s <= 0:
        return None
    return reading.energy_j / reading.window_s
