from collections import namedtuple

import pytest

from hwprof.measuring.meters.estimate import EstimateMeter, busy_fraction, default_tdp_watts

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal")


def times(busy: float, idle: float) -> CpuTimes:
    return CpuTimes(busy, 0.0, 0.0, idle, 0.0, 0.0, 0.0, 0.0)


def test_busy_fraction():
    assert busy_fraction(times(10, 10), times(13, 11)) == pytest.approx(0.75)
    assert busy_fraction(times(10, 10), times(10, 10)) == 0.0


def test_estimate_is_tdp_times_utilisation_times_window():
    readings = iter([times(0, 0), times(1.0, 1.0)])            # 50% busy
    meter = EstimateMeter(tdp_watts=100.0, cpu_times=lambda: next(readings))
    meter.start()
    r = meter.stop()
    assert r.source == "estimate"
    assert r.energy_j == pytest.approx(100.0 * 0.5 * r.window_s)
    assert "not a measurement" in meter.describe() and "given by the user" in meter.describe()


def test_default_tdp_is_documented_and_positive():
    m = EstimateMeter()
    assert m.tdp_watts == default_tdp_watts() > 0
    assert "default" in m.describe()
