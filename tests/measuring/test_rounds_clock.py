"""measure_rounds on a fake clock: round lengths, ordering, stopping, energy paths, probe and flags."""
import math
from contextlib import contextmanager

import pytest

from hwprof.measuring.contention import WindowLoad
from hwprof.measuring.measure import Policy
from hwprof.measuring.meters.base import EnergyMeter, NoMeter
from hwprof.measuring.paired import measure_rounds
from hwprof.measuring.rounds import ROUND_RESOLUTIONS
from tests.measuring.fakes import ClockTimer


class Meter(EnergyMeter):
    """Joules = watts(fn that ran) x fake seconds; the timer tells it which side is running."""
    source = "rapl"

    def __init__(self, resolution_s=0.0, min_window_s=0.0, nan_after=None):
        super().__init__()
        self.resolution_s, self.min_window_s, self.nan_after = resolution_s, min_window_s, nan_after
        self.j, self.windows = 0.0, []

    def _start(self):
        self.j = 0.0

    def _stop(self, window_s):
        self.windows.append(window_s)
        if self.nan_after is not None and len(self.windows) > self.nan_after:
            return None, self.source, False
        return self.j, self.source, False

    def describe(self):
        return "fake"


class SideTimer(ClockTimer):
    """fn() returns (seconds per call, watts); records which side ran, and charges the meter."""

    def __init__(self, clock, meter=None, **kw):
        super().__init__(clock, [0.0], **kw)
        self.meter, self.log = meter, []

    def time_batch(self, fn, n):
        per_call, watts = fn()
        self.log.append((per_call, n))
        self.clock.advance(per_call * n)
        if self.meter is not None:
            self.meter.j += watts * per_call * n
        return per_call * n


def P(**kw):
    return Policy(**({"budget_s": 100.0, "warmup_s": 0.0, "min_batch_s": 0.0, "min_window_s": 0.0,
                      "round_s": 0.0, "rounds": 8, "ci_target": 0.5} | kw))


CFG = lambda: (0.125, 1.0)        # noqa: E731  exact binary fractions keep the fake clock exact
REF = lambda: (0.5, 2.0)          # noqa: E731


def test_rounds_alternate_which_side_goes_first_and_stop_at_the_minimum(clock):
    timer = SideTimer(clock)
    m = measure_rounds(CFG, timer, NoMeter(), P(), ref_fn=REF)
    sides = [c for c, _ in timer.log[2:]]                   # after one warm-up call each
    assert sides[:4] == [0.125, 0.5, 0.5, 0.125]            # cfg, ref | ref, cfg | ...
    assert len(m.config.round_medians) == 8 == len(m.reference.round_medians)
    assert m.hef_time == 4.0 and m.hef_time_ci == (4.0, 4.0) and m.flags == []
    assert m.batch == 1 and m.reference_batch == 1


def test_a_given_reference_batch_skips_the_reference_warm_up(clock):
    timer = SideTimer(clock)
    m = measure_rounds(CFG, timer, NoMeter(), P(), ref_fn=REF, ref_batch=3)
    assert timer.log[0] == (0.125, 1) and timer.log[1] == (0.125, 1)      # cfg warm-up, then round 1's cfg
    assert (0.5, 3) in timer.log and (0.5, 1) not in timer.log and m.reference_batch == 3


def test_round_windows_last_round_s_and_the_window_minimum_spreads_over_rounds(clock):
    timer = SideTimer(clock)
    m = measure_rounds(CFG, timer, NoMeter(), P(round_s=0.25))
    assert m.config.windows == [0.25] * 8 and m.config.calls == [2] * 8
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(min_window_s=4.0))
    assert m.config.windows == [0.5] * 8                     # 4 s over 8 rounds


def test_the_budget_stops_unconverged_rounds_at_the_first_round_past_it(clock):
    noisy = iter([0.125, 0.375] * 100)
    timer = SideTimer(clock)
    m = measure_rounds(lambda: (next(noisy), 1.0), timer, NoMeter(), P(budget_s=2.0, rounds=3, ci_target=0.0))
    # warm-up 0.125 then rounds of one call: 0.375, 0.125, ... ; the clock starts after the warm-up
    assert m.sampled_s == 2.0 and len(m.config.round_medians) == 8
    assert "noisy" in m.flags


def test_rounds_continue_past_the_minimum_until_the_interval_is_narrow(clock):
    values = iter([0.125] + [0.125, 0.25] * 4 + [0.125] * 200)   # a noisy start, then steady
    m = measure_rounds(lambda: (next(values), 1.0), SideTimer(clock), NoMeter(),
                       P(rounds=8, ci_target=0.01))
    assert len(m.config.round_medians) > 8 and "noisy" not in m.flags
    assert not (m.summary.ci_high - m.summary.ci_low) / m.summary.median / 2 > 0.01


def test_too_few_rounds_for_an_interval_are_flagged(clock):
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(rounds=3, budget_s=0.0))
    assert "few-repeats" in m.flags and len(m.config.round_medians) == 3


def test_paired_energy_per_round_at_exactly_ten_resolutions(clock):
    meter = Meter(resolution_s=0.025)                        # a 0.25 s round is exactly 10 updates
    timer = SideTimer(clock, meter)
    m = measure_rounds(CFG, timer, meter, P(round_s=0.25), ref_fn=REF)
    assert len(m.config.joules) == len(m.reference.joules) == 8
    assert m.energy.energy_j == sum(m.config.joules) and m.energy.window_s == sum(m.config.windows)
    assert m.calls_in_window == sum(m.config.calls) and m.window_s == m.energy.window_s
    assert m.paired_energy_ratio == pytest.approx(8.0)      # 4x the time at 2x the power
    assert m.hef_energy_ci == pytest.approx((8.0, 8.0))
    assert m.energy_per_call_j == pytest.approx(0.125)
    assert ROUND_RESOLUTIONS == 10
    coarse = Meter(resolution_s=0.025 * 1.01)
    m = measure_rounds(CFG, SideTimer(clock, coarse), coarse, P(round_s=0.25), ref_fn=REF)
    assert m.config.joules == [] and m.hef_energy_ci is None and m.paired_energy_ratio is None


def test_a_meter_needing_long_windows_lengthens_metered_rounds(clock):
    meter = Meter(min_window_s=4.0)
    m = measure_rounds(CFG, SideTimer(clock, meter), meter, P(round_s=0.0))
    assert m.config.windows == [0.5] * 8 and "short-window" not in m.flags


def test_a_coarse_meter_gets_one_long_window_of_the_configuration_alone(clock):
    meter = Meter(resolution_s=1.0, min_window_s=3.0)
    timer = SideTimer(clock, meter)
    m = measure_rounds(CFG, timer, meter, P(round_s=0.25), ref_fn=REF)
    rounds_s = sum(m.config.windows) + sum(m.reference.windows)
    assert m.energy.window_s == 3.0 and m.window_s == 3.0 and m.calls_in_window == 24
    assert m.energy.energy_j == pytest.approx(3.0)          # 1 W for 3 s
    assert m.sampled_s == rounds_s + 3.0
    assert len(m.config.samples) == 8 * 2 + 24               # the long window's samples join the rounds'


def test_a_round_without_a_reading_falls_back_to_one_long_window(clock):
    meter = Meter(resolution_s=0.001, nan_after=3)
    m = measure_rounds(CFG, SideTimer(clock, meter), meter, P(round_s=0.25))
    assert any(math.isnan(j) for j in m.config.joules) and m.hef_energy_ci is None
    assert m.energy.energy_j is None                          # the long window read nothing either


def test_no_meter_reports_the_rounds_time_and_calls(clock):
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(round_s=0.25))
    assert m.energy.energy_j is None and m.energy.window_s == 2.0 and m.calls_in_window == 16
    assert m.energy_per_call_j is None and "short-window" not in m.flags


def test_windows_shorter_than_the_meters_minimum_are_flagged(clock):
    class Learns(Meter):
        def _stop(self, window_s):
            self.min_window_s = 10.0
            return super()._stop(window_s)
    meter = Learns(resolution_s=0.001)
    m = measure_rounds(CFG, SideTimer(clock, meter), meter, P(round_s=0.25))
    assert "short-window" in m.flags


def test_flush_energy_is_measured_when_the_timer_flushes(clock):
    meter = Meter(resolution_s=0.001)
    timer = SideTimer(clock, meter, flushes=True, flush_s=0.01)
    m = measure_rounds(CFG, timer, meter, P(round_s=0.25))
    assert timer.flush_chunks and m.flush_energy_j == 0.0     # flushes drew no power in this fake
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(round_s=0.25))
    assert m.flush_energy_j == 0.0


class Probe:
    def __init__(self, clock, window_s):
        self.clock, self.window_s, self.started = clock, window_s, False

    def start(self):
        self.started = True

    def stop(self):
        return WindowLoad(self.window_s, 0.0, 0.0, 1.0, 1)


@pytest.mark.parametrize("window,kept", [(0.2, True), (0.199, False)])     # CPU times tick every 10 ms
def test_probes_shorter_than_the_cpu_tick_say_nothing(clock, window, kept):
    probe = Probe(clock, window)
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(), probe=probe)
    assert probe.started and (m.load is not None) == kept


def test_contexts_wrap_their_own_side(clock):
    entered = []

    def ctx(name):
        @contextmanager
        def c():
            entered.append(name)
            yield
        return c
    measure_rounds(CFG, SideTimer(clock), NoMeter(), P(rounds=2, budget_s=0.0), ref_fn=REF,
                   context=ctx("cfg"), ref_context=ctx("ref"))
    # the warm-ups, then three rounds: two asked for, a third to reach three samples of the configuration
    assert entered == ["cfg", "ref", "cfg", "ref", "ref", "cfg", "cfg", "ref"]


def test_no_meter_means_no_per_round_readings_and_an_unpaired_run_has_no_reference_batch(clock):
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(round_s=0.25))
    assert m.config.joules == [] and m.energy.source == "none" and m.reference_batch == 0
    assert m.flush_energy_j == 0.0 and m.paired_energy_ratio is None


def test_round_medians_are_per_call_times_when_batched(clock):
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(min_batch_s=0.25, round_s=0.5))
    assert m.batch == 2 and m.config.round_medians == [0.125] * 8 and m.config.calls == [4] * 8


def test_a_zero_width_interval_stops_at_the_minimum_and_is_not_noisy(clock):
    m = measure_rounds(CFG, SideTimer(clock), NoMeter(), P(ci_target=0.0), ref_fn=REF)
    assert len(m.config.round_medians) == 8 and m.hef_time_ci == (4.0, 4.0) and "noisy" not in m.flags


def test_energy_ratios_use_each_sides_own_calls(clock):
    meter = Meter(resolution_s=0.05)                          # 1 s rounds: 8 calls of the config, 2 of the reference
    m = measure_rounds(CFG, SideTimer(clock, meter), meter, P(round_s=1.0), ref_fn=REF)
    assert m.config.calls[0] == 8 and m.reference.calls[0] == 2
    assert m.hef_energy_ci == pytest.approx((8.0, 8.0)) and m.paired_energy_ratio == pytest.approx(8.0)


class ZeroOnce(Meter):
    """Reads 0 J in the window numbered `which` (a round the counter did not see)."""

    def __init__(self, which, **kw):
        super().__init__(**kw)
        self.which = which

    def _stop(self, window_s):
        j, source, retry = super()._stop(window_s)
        return (0.0 if len(self.windows) == self.which else j), source, retry


@pytest.mark.parametrize("which", [1, 2])                   # the configuration's first window, the reference's
def test_a_round_that_read_zero_joules_is_left_out_of_the_energy_interval(clock, which):
    meter = ZeroOnce(which, resolution_s=0.0125)
    m = measure_rounds(CFG, SideTimer(clock, meter), meter, P(round_s=0.25, rounds=9), ref_fn=REF)
    lo, hi = m.hef_energy_ci
    assert lo == pytest.approx(8.0) and hi == pytest.approx(8.0)


def test_a_round_whose_configuration_median_is_zero_is_left_out_of_hef(clock):
    values = iter([0.125, 0.0] + [0.125] * 100)               # warm-up, then a round the clock did not see
    m = measure_rounds(lambda: (next(values), 1.0), SideTimer(clock), NoMeter(), P(rounds=9), ref_fn=REF)
    assert m.config.round_medians[0] == 0.0 and m.hef_time == 4.0


def test_measurement_defaults():
    from hwprof.measuring.rounds import RoundsMeasurement, Side
    from hwprof.measuring.meters.base import EnergyReading
    from hwprof.measuring.stats import summarize
    m = RoundsMeasurement(Side(), None, 1, summarize([1.0]), None, None, None, EnergyReading(None, 0.0, "none"), 0,
                          0.0, None, [], 0.0)
    assert m.flush_energy_j == 0.0 and m.paired_energy_ratio is None and m.reference_batch == 0
