import pytest
import itertools

from hwprof.measuring.measure import Policy, measure
from hwprof.measuring.meters.base import EnergyMeter


class FakeTimer:
    """Per-call times drawn from a repeating list; no real waiting."""
    name = "fake"

    def __init__(self, per_call):
        self.values = itertools.cycle(per_call)
        self.batches = []

    flushes = False

    def time_batch(self, fn, n):
        self.batches.append(n)
        return next(self.values) * n

    def flush_only(self, n):
        pass


class CountingMeter(EnergyMeter):
    source = "rapl"
    min_window_s = 0.0

    def __init__(self, joules=10.0, retry_first=False):
        super().__init__()
        self.joules, self.retry_first, self.windows = joules, retry_first, 0

    def _start(self):
        pass

    def _stop(self, window_s):
        self.windows += 1
        if self.retry_first and self.windows == 1:
            return None, self.source, True
        return self.joules, self.source, False

    def describe(self):
        return "counting"


def test_stops_when_ci_target_is_met_and_reports_per_call_energy():
    timer = FakeTimer([1.00e-3, 1.01e-3, 0.99e-3])
    m = measure(lambda: None, timer, CountingMeter(), Policy(budget_s=60, warmup_s=0, min_batch_s=0.002, min_window_s=0))
    assert m.summary.n == 10                       # min_samples, then the CI is already tight
    assert m.batch == 2                            # 2 calls reach min_batch_s
    assert abs(m.summary.median - 1e-3) < 1e-9
    assert m.calls_in_window == 20
    assert m.energy_per_call_j == 10.0 / 20
    assert m.flags == []


def test_slow_kernel_still_gets_three_samples_and_is_flagged():
    timer = FakeTimer([5.0])                       # each call "takes" longer than the budget
    m = measure(lambda: None, timer, CountingMeter(), Policy(budget_s=0.0, warmup_s=0, min_window_s=0))
    assert m.summary.n == 3 and "few-repeats" in m.flags and m.batch == 1


def test_noisy_measurement_is_flagged():
    timer = FakeTimer([1e-3, 3e-3, 0.5e-3, 2e-3])
    m = measure(lambda: None, timer, CountingMeter(), Policy(budget_s=0.0, warmup_s=0, min_samples=10, min_window_s=0))
    assert "noisy" in m.flags


def test_meter_retry_measures_a_second_window():
    meter = CountingMeter(retry_first=True)
    m = measure(lambda: None, FakeTimer([1e-3]), meter, Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert meter.windows == 2 and m.energy.energy_j == 10.0
    assert m.energy_per_call_j == 10.0 / m.calls_in_window


def test_retry_window_uses_the_new_meters_minimum():
    """After the counter reads zero the sampler takes over with a 2 s minimum; the second window must be
    that long (a stale 0 s minimum gave a false short-window flag)."""
    import time

    class SwitchingMeter(CountingMeter):
        def _stop(self, window_s):
            self.windows += 1
            if self.windows == 1:
                self.min_window_s = 0.3          # the fallback's longer minimum
                return None, self.source, True
            return self.joules, self.source, False

    class SleepTimer(FakeTimer):
        def time_batch(self, fn, n):
            time.sleep(0.005)
            return 1e-3 * n

    meter = SwitchingMeter()
    m = measure(lambda: None, SleepTimer([1e-3]), meter,
                Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert meter.windows == 2 and m.window_s >= 0.3 and "short-window" not in m.flags
    assert m.sampled_s > m.window_s                 # both windows' sampling time is accounted


def test_window_s_energy_and_calls_come_from_the_same_window():
    meter = CountingMeter(retry_first=True, joules=6.0)
    m = measure(lambda: None, FakeTimer([1e-3]), meter, Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert m.energy.window_s == m.window_s or abs(m.energy.window_s - m.window_s) < 0.01
    assert m.power_w == 6.0 / m.energy.window_s


class FlushingTimer(FakeTimer):
    flushes = True

    def __init__(self, per_call, meter):
        super().__init__(per_call)
        self.meter = meter
        self.flushed = 0

    def flush_only(self, n):
        self.flushed += n
        self.meter.flush_calls += n


def test_flush_energy_is_measured_apart_and_kept_out_of_the_energy_per_call():
    class FlushMeter(CountingMeter):
        """Window energy = 1 mJ per timed call + 0.5 mJ per flush done in the window."""
        def __init__(self):
            super().__init__()
            self.flush_calls = 0
            self.timed_calls = 0

        def _start(self):
            self.flush_calls = self.timed_calls = 0

        def _stop(self, window_s):
            self.windows += 1
            return 1e-3 * self.timed_calls + 5e-4 * self.flush_calls, self.source, False

    meter = FlushMeter()
    timer = FlushingTimer([1e-3], meter)
    real = timer.time_batch

    def timed(fn, n):                     # each timed call is preceded by a flush inside the window
        meter.timed_calls += n
        meter.flush_calls += n
        return real(fn, n)
    timer.time_batch = timed
    m = measure(lambda: None, timer, meter, Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert timer.flushed > 0
    assert abs(m.flush_energy_j - 5e-4 * m.calls_in_window) < 1e-12
    assert abs(m.energy_per_call_j - 1e-3) < 1e-12          # the kernel's own joules, flushes taken out


def test_policy_defaults_are_the_documented_ones():
    """README, "Timing": the values a suite gets when it does not set them."""
    import dataclasses
    assert dataclasses.asdict(Policy()) == {
        "budget_s": 2.0, "ci_target": 0.02, "min_samples": 10, "warmup_s": 0.1, "min_batch_s": 0.002,
        "min_window_s": 1.0, "confidence": 0.975, "rounds": 8, "round_s": 0.1, "span_s": 120.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        Policy().budget_s = 1.0


def test_stop_rule_checks_at_ten_percent_steps_and_follows_the_target():
    from hwprof.measuring.measure import StopRule
    rule = StopRule(Policy(min_samples=10, ci_target=0.05))
    assert rule.converged is False and rule.next_check == 10
    xs = [1.0] * 9
    assert rule.update(xs) is False and rule.next_check == 10          # not checked before min_samples
    xs += [1.0]
    assert rule.update(xs) is True and rule.next_check == 11
    xs += [1.0] * 10
    rule.update(xs)
    assert rule.next_check == 22                                         # n + n // 10
    wide = StopRule(Policy(min_samples=10, ci_target=0.05))
    assert wide.update([1.0, 2.0] * 5) is False                          # 50% half-width is not within 5%
    exact = StopRule(Policy(min_samples=10, ci_target=0.0))
    assert exact.update([1.0] * 10) is True                               # a zero-width interval meets a 0 target


def test_calibrated_batch_is_the_smallest_that_reaches_the_minimum():
    from hwprof.measuring.measure import calibrate_batch

    class PerCall:
        flushes = False

        def __init__(self, per_call):
            self.per_call, self.asked = per_call, []

        def time_batch(self, fn, n):
            self.asked.append(n)
            return self.per_call * n
    t = PerCall(1e-5)
    assert calibrate_batch(lambda: None, t, 0.002) == 200 and t.asked == [1, 200]    # jumps by the prediction
    t = PerCall(1e-5)
    assert calibrate_batch(lambda: None, t, 0.002, n=50) == 200 and t.asked == [50, 200]
    slow = PerCall(1.0)
    assert calibrate_batch(lambda: None, slow, 0.002) == 1 and slow.asked == [1]

    class Zero(PerCall):
        def time_batch(self, fn, n):
            self.asked.append(n)
            return 0.0                       # a clock too coarse to see the batch: keep doubling
    z = Zero(0)
    assert calibrate_batch(lambda: None, z, 0.002, cap=64) == 64 and z.asked == [1, 2, 4, 8, 16, 32]
    assert calibrate_batch(lambda: None, Zero(0), 0.002) == 1 << 20
    partial = PerCall(3e-4)                  # 1 call: 0.3 ms -> predicted 7 calls, at least doubling
    assert calibrate_batch(lambda: None, partial, 0.002) == 7


def test_measurement_defaults_and_missing_energy():
    from hwprof.measuring.measure import Measurement
    from hwprof.measuring.meters.base import EnergyReading
    from hwprof.measuring.stats import summarize
    m = Measurement([1e-3] * 10, 1, 0, 1.0, EnergyReading(5.0, 1.0, "rapl"), summarize([1e-3] * 10), 0.0)
    assert m.flags == [] and m.sampled_s == 0.0 and m.flush_energy_j == 0.0
    assert m.energy_per_call_j is None                       # no calls in the window
    assert m.power_w == 5.0
    none = Measurement([1e-3], 1, 5, 1.0, EnergyReading(None, 1.0, "none"), summarize([1e-3]), 0.0)
    assert none.energy_per_call_j is None and none.power_w is None
    empty_window = Measurement([1e-3], 1, 5, 0.0, EnergyReading(5.0, 0.0, "rapl"), summarize([1e-3]), 0.0)
    assert empty_window.power_w is None and empty_window.energy_per_call_j == 1.0


def test_the_warm_up_predicts_the_batch_and_one_calibration_confirms_it():
    timer = FakeTimer([1.00e-3])
    m = measure(lambda: None, timer, CountingMeter(), Policy(budget_s=0.0, warmup_s=0, min_batch_s=0.002, min_window_s=0))
    assert timer.batches[:2] == [1, 2] and m.batch == 2        # warm-up call, then the predicted batch of 2
    assert 0 <= m.warmup_s < 5 and m.sampled_s == pytest.approx(m.window_s, abs=0.05)


def test_a_meter_that_keeps_asking_gets_two_windows_only():
    class Always(CountingMeter):
        def _stop(self, window_s):
            self.windows += 1
            return None, self.source, True
    meter = Always()
    m = measure(lambda: None, FakeTimer([1e-3]), meter, Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert meter.windows == 2 and m.energy_per_call_j is None


def test_after_a_retry_the_calls_are_those_of_the_last_window():
    meter = CountingMeter(retry_first=True)
    m = measure(lambda: None, FakeTimer([1e-3]), meter, Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert 0 < m.calls_in_window < m.batch * len(m.samples)


def test_the_window_lasts_the_minimum_and_the_budget_ends_an_unconverged_one():
    import time

    class Sleepy(FakeTimer):
        def time_batch(self, fn, n):
            time.sleep(0.004)
            return super().time_batch(fn, n)
    quiet = measure(lambda: None, Sleepy([1e-3]), CountingMeter(),
                    Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0.1))
    assert quiet.window_s >= 0.1                                # converged at once, still sampled 0.1 s
    noisy = measure(lambda: None, Sleepy([1e-3, 5e-3, 2e-3, 9e-3]), CountingMeter(),
                    Policy(budget_s=0.15, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert 0.15 <= noisy.window_s < 0.5 and "noisy" in noisy.flags


def test_short_windows_are_flagged_only_when_energy_was_measured():
    class Coarser(CountingMeter):
        def _stop(self, window_s):            # learns at the end that it needed a longer window
            self.min_window_s = 10.0
            return super()._stop(window_s)
    m = measure(lambda: None, FakeTimer([1e-3]), Coarser(), Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert "short-window" in m.flags
    from hwprof.measuring.meters.base import NoMeter
    n = measure(lambda: None, FakeTimer([1e-3]), NoMeter(), Policy(budget_s=0.0, warmup_s=0, min_batch_s=1e-3, min_window_s=0))
    assert "short-window" not in n.flags
