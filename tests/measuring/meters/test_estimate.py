from collections import namedtuple

import pytest

from hwprof.measuring.cputime import share
from hwprof.measuring.meters.estimate import DEFAULT_WATTS_PER_CPU, EstimateMeter, default_tdp_watts

# psutil.cpu_times(percpu=True) on Linux, field for field
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


def cpu(user=0.0, idle=0.0, steal=0.0, guest=0.0, system=0.0):
    return CpuTimes(user, 0.0, system, idle, 0.0, 0.0, 0.0, steal, guest, 0.0)


def test_share_counts_guest_once_and_steal_as_neither_work_nor_idle():
    before = [cpu(), cpu()]
    after = [cpu(user=6.0, idle=2.0, steal=2.0, guest=4.0), cpu(user=1.0, idle=9.0)]
    s = share(before, after, [0])
    assert s.total_s == 10.0                 # 6 + 2 + 2; guest (inside user) not added again
    assert s.busy_s == 6.0 and s.steal_s == 2.0 and s.busy_fraction == pytest.approx(0.6)
    assert share(before, after, [1]).busy_fraction == pytest.approx(0.1)


def test_estimate_takes_utilisation_over_the_affinity_cpus_only():
    """A process pinned to 2 of 64 saturated CPUs: the share of *its* CPUs is busy, not 2/64 of the host."""
    idle_host = [cpu() for _ in range(64)]
    after = [cpu(user=1.0) if i in (5, 6) else cpu(idle=1.0) for i in range(64)]
    readings = iter([idle_host, after])
    meter = EstimateMeter(tdp_watts=14.0, cpu_times=lambda: next(readings), cpus=[5, 6])
    meter.start()
    r = meter.stop()
    assert meter.last_utilisation == 1.0
    assert r.energy_j == pytest.approx(14.0 * 1.0 * r.window_s)


def test_default_tdp_scales_with_the_same_cpu_set():
    m = EstimateMeter(cpus=[0, 1, 2])
    assert m.tdp_watts == 3 * DEFAULT_WATTS_PER_CPU
    assert "3 usable CPUs" in m.describe() and "no idle draw" in m.describe()
    assert EstimateMeter().tdp_watts == default_tdp_watts() > 0


def test_given_tdp_is_labelled():
    readings = iter([[cpu()], [cpu(user=1.0, idle=1.0)]])
    meter = EstimateMeter(tdp_watts=100.0, cpu_times=lambda: next(readings), cpus=[0])
    meter.start()
    r = meter.stop()
    assert r.source == "estimate" and r.energy_j == pytest.approx(100.0 * 0.5 * r.window_s)
    assert "not a measurement" in meter.describe() and "given by the user" in meter.describe()
