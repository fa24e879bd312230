"""Paired rounds on fake timers: hef from per-round ratios, drift common to both sides cancels."""
import statistics

import pytest

from hwprof.measuring.measure import Policy
from hwprof.measuring.meters.base import EnergyMeter, NoMeter
from hwprof.measuring.paired import measure_rounds
from hwprof.measuring.stats import median_ci


class DriftTimer:
    """Per-call time = base(fn) x a machine speed that drifts by 3x over the run (shared by both sides)."""
    name = "fake"
    flushes = False

    def __init__(self):
        self.clock = 0

    def time_batch(self, fn, n):
        # the machine alternates fast and slow phases two batches long: with one warm-up call per side
        # before the rounds, each round's pair of windows falls inside one phase
        self.clock += 1
        speed = 1.0 + 2.0 * (((self.clock - 1) // 2) % 2)
        return fn() * speed * n

    def flush_only(self, n):
        pass


def policy(**kw):
    return Policy(**({"budget_s": 0.0, "warmup_s": 0.0, "min_batch_s": 0.0, "min_window_s": 0.0,
                      "round_s": 0.0, "rounds": 9} | kw))


def test_hef_from_paired_rounds_cancels_common_drift():
    m = measure_rounds(lambda: 1e-3, DriftTimer(), NoMeter(), policy(), ref_fn=lambda: 4e-3)
    assert m.hef_time == pytest.approx(4.0, rel=1e-9)
    lo, hi = m.hef_time_ci
    assert lo == pytest.approx(4.0, rel=1e-9) and hi == pytest.approx(4.0, rel=1e-9)
    assert len(m.config.round_medians) == len(m.reference.round_medians) >= 9
    ratios = [r / c for r, c in zip(m.reference.round_medians, m.config.round_medians)]
    assert m.hef_time == statistics.median(ratios)


def test_time_interval_covers_variation_between_rounds():
    m = measure_rounds(lambda: 1e-3, DriftTimer(), NoMeter(), policy())
    assert m.hef_time is None and m.reference is None
    assert m.summary.ci_low <= m.summary.median <= m.summary.ci_high
    assert m.summary.ci_high / m.summary.ci_low == pytest.approx(3.0)      # the phases show in the interval
    assert "noisy" in m.flags


class Counter(EnergyMeter):
    """1 J per 1 ms of fake time in the window, through the calls the fake timer reports."""
    source = "rapl"
    min_window_s = 0.0
    resolution_s = 0.0

    def __init__(self):
        super().__init__()
        self.j = 0.0

    def _start(self):
        self.j = 0.0

    def _stop(self, window_s):
        return self.j, self.source, False

    def describe(self):
        return "fake"


def test_paired_energy_sums_rounds_and_gives_an_energy_interval():
    meter = Counter()

    class T(DriftTimer):
        def time_batch(self, fn, n):
            t = super().time_batch(fn, n)
            meter.j += t * 1000 * (2.0 if fn() > 2e-3 else 1.0)       # the reference also draws twice the power
            return t

    m = measure_rounds(lambda: 1e-3, T(), meter, policy(), ref_fn=lambda: 4e-3)
    assert m.energy.energy_j == pytest.approx(sum(m.config.joules))
    assert m.calls_in_window == sum(m.config.calls)
    assert m.paired_energy_ratio == pytest.approx(8.0, rel=1e-6)            # 4x the time at 2x the power
    lo, hi = m.hef_energy_ci
    assert lo == pytest.approx(8.0, rel=1e-6) and hi == pytest.approx(8.0, rel=1e-6)


def test_a_coarse_meter_gets_one_long_window_instead():
    class Coarse(Counter):
        resolution_s = 1.0
        min_window_s = 0.0
    m = measure_rounds(lambda: 1e-3, DriftTimer(), Coarse(), policy(), ref_fn=lambda: 2e-3)
    assert m.config.joules == [] and m.hef_energy_ci is None and m.energy.energy_j is not None


def test_median_ci_over_rounds():
    assert median_ci([1.0, 2.0, 3.0], 0.95) is None
    assert median_ci(list(range(1, 9)), 0.975) == (1, 8)
