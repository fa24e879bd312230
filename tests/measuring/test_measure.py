import itertools

from hwprof.measuring.measure import Policy, measure
from hwprof.measuring.meters.base import EnergyMeter


class FakeTimer:
    """Per-call times drawn from a repeating list; no real waiting."""
    name = "fake"

    def __init__(self, per_call):
        self.values = itertools.cycle(per_call)
        self.batches = []

    def time_batch(self, fn, n):
        self.batches.append(n)
        return next(self.values) * n

    def synchronize(self):
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
