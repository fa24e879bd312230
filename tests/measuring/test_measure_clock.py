"""measure.py's loops and helpers on a fake clock: boundaries to the tick, not 'about right'."""
import pytest
import torch

import hwprof.measuring.measure as measure_mod
from hwprof.measuring.measure import Policy, flush_energy, idle_power, measure, prepare_batch, warm_up
from hwprof.measuring.meters.base import EnergyMeter, NoMeter
from tests.measuring.fakes import ClockTimer


class Meter(EnergyMeter):
    """power_w watts over the window's fake time; min_window_s as set."""
    source = "rapl"

    def __init__(self, power_w=10.0, min_window_s=0.0, energy=True):
        super().__init__()
        self.power_w, self.min_window_s, self.energy, self.windows = power_w, min_window_s, energy, []

    def _start(self):
        pass

    def _stop(self, window_s):
        self.windows.append(window_s)
        return (self.power_w * window_s if self.energy else None), self.source, False

    def describe(self):
        return "fake"


def test_warm_up_runs_until_the_time_is_reached_and_returns_the_last_call(clock):
    timer = ClockTimer(clock, [1.0, 2.0, 4.0, 8.0])
    assert warm_up(lambda: None, timer, 3.0) == 2.0          # t = 1, 3: reached exactly at the second call
    assert timer.batches == [1, 1]
    timer = ClockTimer(clock, [1.0])
    assert warm_up(lambda: None, timer, 0.0) == 1.0 and timer.batches == [1]     # at least one call


def test_prepare_batch_boundaries(clock):
    exact = ClockTimer(clock, [2e-3])                        # a call as long as a batch must be: batch 1
    assert prepare_batch(lambda: None, exact, Policy(warmup_s=0, min_batch_s=2e-3)) == 1
    assert exact.batches == [1]
    short = ClockTimer(clock, [3e-4])                        # predicted ceil(2 / 0.3) = 7, confirmed once
    assert prepare_batch(lambda: None, short, Policy(warmup_s=0, min_batch_s=2e-3)) == 7
    assert short.batches == [1, 7]
    zero = ClockTimer(clock, [0.0] + [1e-3] * 9)                    # a warm-up call the clock could not see
    assert prepare_batch(lambda: None, zero, Policy(warmup_s=0, min_batch_s=2e-3)) == 2
    assert zero.batches == [1, 1, 2]


def test_window_ends_at_exactly_its_minimum_once_converged(clock):
    timer = ClockTimer(clock, [0.125])                       # identical samples: converged at min_samples
    m = measure(lambda: None, timer, NoMeter(), Policy(budget_s=100, warmup_s=0, min_batch_s=0.125,
                                                       min_window_s=1.5, min_samples=10))
    assert len(m.samples) == 12 and m.window_s == 1.5
    assert m.flags == []                                     # zero width is within a zero... or any target


def test_the_budget_ends_an_unconverged_window_at_the_first_sample_past_it(clock):
    timer = ClockTimer(clock, [0.125, 0.375])
    m = measure(lambda: None, timer, NoMeter(), Policy(budget_s=2.0, warmup_s=0, min_batch_s=0.125,
                                                       min_window_s=0, ci_target=0.01, min_samples=3))
    assert m.window_s == 2.0 and len(m.samples) == 8 and "noisy" in m.flags


def test_three_samples_even_when_one_outlasts_window_and_budget(clock):
    m = measure(lambda: None, ClockTimer(clock, [10.0]), NoMeter(),
                Policy(budget_s=1.0, warmup_s=0, min_batch_s=0.1, min_window_s=1.0))
    assert len(m.samples) == 3


def test_a_zero_width_interval_meets_a_zero_target_without_a_noisy_flag(clock):
    m = measure(lambda: None, ClockTimer(clock, [0.1]), NoMeter(),
                Policy(budget_s=0, warmup_s=0, min_batch_s=0.1, min_window_s=0, ci_target=0.0))
    assert "noisy" not in m.flags


def test_a_window_of_exactly_the_meters_minimum_is_not_short(clock):
    meter = Meter(min_window_s=1.0)
    m = measure(lambda: None, ClockTimer(clock, [0.125]), meter,
                Policy(budget_s=0, warmup_s=0, min_batch_s=0.125, min_window_s=0))
    assert m.window_s == 1.0 and "short-window" not in m.flags
    assert m.energy.energy_j == pytest.approx(10.0) and m.power_w == pytest.approx(10.0)


def test_flush_energy_runs_chunks_for_the_meters_window_and_scales_to_the_calls(clock):
    timer = ClockTimer(clock, [0.0], flushes=True, flush_s=2 ** -16)
    meter = Meter(power_w=2.0)
    j = flush_energy(timer, meter, 5000)
    assert timer.flush_chunks[0] == 1000                     # chunks of at most 1000 flushes
    assert len(timer.flush_chunks) == 4                      # 4 x 15.3 ms pass the 50 ms floor
    assert j == pytest.approx(2.0 * 2 ** -16 * 5000)         # joules per flush x the calls' flushes
    timer = ClockTimer(clock, [0.0], flushes=True, flush_s=1e-3)
    j = flush_energy(timer, Meter(power_w=2.0, min_window_s=0.2), 7)
    assert timer.flush_chunks == [7] * 29                    # 7 ms a chunk; the meter's 0.2 s minimum
    assert j == pytest.approx(2.0 * 1e-3 * 7)                # 2 mJ per flush, 7 of them
    timer = ClockTimer(clock, [0.0], flushes=True, flush_s=1.0)
    flush_energy(timer, Meter(), 0)
    assert timer.flush_chunks == [1]                         # no calls: still one flush, chunk 1
    one = ClockTimer(clock, [0.0], flushes=True, flush_s=1.0)
    assert flush_energy(one, Meter(power_w=3.0), 1) == pytest.approx(3.0)   # one flush, longer than the window
    assert flush_energy(ClockTimer(clock, [0.0], flushes=True, flush_s=1.0), Meter(energy=False), 10) == 0.0


def test_idle_power_is_the_mean_power_of_an_empty_window(clock):
    meter = Meter(power_w=7.0, min_window_s=2.0)
    assert idle_power(meter, 0.5) == pytest.approx(7.0)
    assert clock.slept == [2.0]                              # at least the meter's minimum window
    assert idle_power(Meter(power_w=7.0), 3.0) == pytest.approx(7.0) and clock.slept[-1] == 3.0
    assert idle_power(Meter(), 0.0) is None and idle_power(Meter(), -1.0) is None
    assert idle_power(NoMeter(), 5.0) is None
    assert idle_power(Meter(energy=False), 1.0) is None
    slept = len(clock.slept)

    class Instant(Meter):
        def stop(self):                                      # a window the clock could not see
            from hwprof.measuring.meters.base import EnergyReading
            return EnergyReading(1.0, 0.0, self.source)
    assert idle_power(Instant(), 1.0) is None and len(clock.slept) == slept + 1


class FakeTorch:
    """Records device_warmup's work: the matrix size, the products, the synchronisations."""

    def __init__(self, clock, matmul_s=2 ** -7):
        self.clock, self.matmul_s, self.shapes, self.matmuls, self.syncs = clock, matmul_s, [], 0, []
        outer = self

        class Matrix:
            def __matmul__(self, other):
                outer.matmuls += 1
                outer.clock.advance(outer.matmul_s)
                return self

        class Cuda:
            @staticmethod
            def synchronize(device):
                outer.syncs.append(device)
        self.Matrix, self.cuda = Matrix, Cuda

    def randn(self, *shape, device):
        self.shapes.append((shape, device))
        return self.Matrix()


@pytest.mark.parametrize("kind,size,syncs", [("cpu", 256, 0), ("cuda", 2048, 3)])
def test_device_warmup_busies_the_device_for_the_time_asked(clock, monkeypatch, kind, size, syncs):
    fake = FakeTorch(clock)
    monkeypatch.setattr(measure_mod, "torch", fake)
    device = torch.device(kind)
    measure_mod.device_warmup(device, 24 * 2 ** -7)
    assert fake.shapes == [((size, size), device)]
    assert fake.matmuls == 24                                # groups of 8 until 24 products have passed
    assert len(fake.syncs) == syncs and all(d == device for d in fake.syncs)
    fake = FakeTorch(clock)
    monkeypatch.setattr(measure_mod, "torch", fake)
    measure_mod.device_warmup(device, 0.0)
    assert fake.matmuls == 0


def test_after_a_retry_the_calls_are_exactly_those_of_the_second_window(clock):
    class Retry(Meter):
        def _stop(self, window_s):
            self.windows.append(window_s)
            return (None, self.source, True) if len(self.windows) == 1 else (1.0, self.source, False)
    m = measure(lambda: None, ClockTimer(clock, [0.125]), Retry(),
                Policy(budget_s=0, warmup_s=0, min_batch_s=0.25, min_window_s=1.0))
    assert m.batch == 2 and len(m.samples) == 8 and m.calls_in_window == 2 * 4     # 4 batches in the second window


def test_a_batch_short_of_the_minimum_at_least_doubles():
    from hwprof.measuring.measure import calibrate_batch

    class PerCall:
        def __init__(self):
            self.asked = []

        def time_batch(self, fn, n):
            self.asked.append(n)
            return 0.475e-3 * n
    t = PerCall()
    assert calibrate_batch(lambda: None, t, 2e-3, n=4) == 8 and t.asked == [4, 8]     # predicted 5, doubled to 8


def test_the_stop_rule_steps_by_whole_samples():
    from hwprof.measuring.measure import StopRule
    rule = StopRule(Policy(min_samples=25, ci_target=0.5))
    rule.update([1.0] * 25)
    assert rule.next_check == 27 and isinstance(rule.next_check, int)


def test_flush_window_ends_at_exactly_the_meters_minimum(clock):
    timer = ClockTimer(clock, [0.0], flushes=True, flush_s=2 ** -6 / 10)       # 10 flushes = 15.625 ms
    flush_energy(timer, Meter(min_window_s=0.0625), 10)
    assert len(timer.flush_chunks) == 4                                    # 4 x 15.625 ms = 62.5 ms: done


def test_idle_power_sleeps_only_when_there_is_a_meter_and_time(clock):
    assert idle_power(NoMeter(), 5.0) is None and clock.slept == []       # no meter: no idle second either
    assert idle_power(Meter(min_window_s=1.0), 0.0) is None and clock.slept == []
    assert idle_power(Meter(power_w=7.0), 0.5) == pytest.approx(7.0)      # a half-second window is a window
