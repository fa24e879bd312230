"""The contention detector on recorded CPU-time readings (quiet, a neighbour, steal) - no real load."""
from collections import namedtuple

import pytest

from hwprof.measuring.contention import (CONTENDED_CORES, CpuReading, LoadProbe, QuietCheck, load_between,
                                         nvml_other_processes, wait_for_quiet)

T = namedtuple("T", "user nice system idle iowait irq softirq steal guest guest_nice")


def cpu(user=0.0, system=0.0, idle=0.0, steal=0.0):
    return T(user, 0.0, system, idle, 0.0, 0.0, 0.0, steal, 0.0, 0.0)


def reading(t, per, own):
    return CpuReading(t, per, own)


ZERO = [cpu(), cpu()]


def test_quiet_window_two_threads_busy():
    # 1 s window; our 2 threads kept both CPUs busy (1.98 s of our time), 0.02 s of a daemon
    end = [cpu(user=1.0, idle=0.0), cpu(user=1.0, idle=0.0)]
    load = load_between(reading(0, ZERO, 0.0), reading(1.0, end, 1.98), [0, 1], threads=2)
    assert load.other_cores == pytest.approx(0.02) and load.own_cores == pytest.approx(1.98)
    assert not load.contended and not load.stalled and load.flags(cpu_kernel=True) == []


def test_neighbour_process_is_contended():
    # recorded with a 2-thread 1024^2 matmul loop beside a 2-thread kernel: we got ~1 core, it got ~1 core
    end = [cpu(user=1.0), cpu(user=1.0)]
    load = load_between(reading(0, ZERO, 0.0), reading(1.0, end, 1.02), [0, 1], threads=2)
    assert load.other_cores == pytest.approx(0.98) and load.other_cores > CONTENDED_CORES
    assert "contended" in load.flags(cpu_kernel=True)


def test_steal_is_contention_but_not_other_processes():
    end = [cpu(user=0.8, steal=0.2), cpu(user=0.8, steal=0.2)]
    load = load_between(reading(0, ZERO, 0.0), reading(1.0, end, 1.6), [0, 1], threads=2)
    assert load.steal_frac == pytest.approx(0.2) and load.other_cores == pytest.approx(0.0)
    assert load.contended


def test_stalled_when_own_busy_time_is_far_below_the_threads():
    end = [cpu(user=0.2, idle=0.8), cpu(user=0.1, idle=0.9)]
    load = load_between(reading(0, ZERO, 0.0), reading(1.0, end, 0.3), [0, 1], threads=2)
    assert load.stalled and "stalled" in load.flags(cpu_kernel=True)
    assert "stalled" not in load.flags(cpu_kernel=False)           # a GPU kernel's host thread waits
    one_thread = load_between(reading(0, ZERO, 0.0), reading(1.0, end, 0.3), [0, 1], threads=1)
    assert not one_thread.stalled


def test_only_this_runs_cpus_count():
    # CPU 2 is outside the affinity set: its load is not this run's contention
    end = [cpu(user=1.0), cpu(user=1.0), cpu(user=1.0)]
    load = load_between(reading(0, [cpu()] * 3, 0.0), reading(1.0, end, 2.0), [0, 1], threads=2)
    assert load.other_cores == pytest.approx(0.0)


def test_other_gpu_processes_mean_contended():
    class P:
        def __init__(self, pid):
            self.pid = pid

    import os

    class Nvml:
        def nvmlDeviceGetComputeRunningProcesses(self, h):
            return [P(os.getpid()), P(1)]
    assert nvml_other_processes(Nvml(), "h")() == 1
    end = [cpu(user=1.0), cpu(user=1.0)]
    load = load_between(reading(0, ZERO, 0.0), reading(1.0, end, 2.0), [0, 1], 2, gpu_other_processes=1)
    assert load.contended


def test_probe_reads_both_ends():
    seq = iter([ZERO, [cpu(user=0.5, idle=0.5), cpu(user=0.5, idle=0.5)]])
    own = iter([0.0, 1.0])
    probe = LoadProbe([0, 1], 2, percpu=lambda: next(seq), own=lambda: next(own))
    probe.start()
    load = probe.stop()
    assert load.other_cores >= 0 and load.threads == 2


def test_wait_for_quiet_stops_when_quiet_or_at_the_timeout():
    checks = iter([QuietCheck(0.1, 1.0, 0.0), QuietCheck(0.1, 0.0, 0.0)])
    qc = wait_for_quiet([0], timeout_s=10, probe_s=0.0, check=lambda cpus, s: next(checks))
    assert qc.quiet
    busy = wait_for_quiet([0], timeout_s=0.0, probe_s=0.0, check=lambda cpus, s: QuietCheck(0.1, 1.0, 0.0))
    assert not busy.quiet
