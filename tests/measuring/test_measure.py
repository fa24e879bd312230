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
