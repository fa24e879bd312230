"""An explicit estimate when no energy counter exists: TDP x measured CPU utilisation.

Always labelled `estimate` in results and reports: it scales with time and utilisation and cannot see
what a kernel does to power (vector width, memory traffic). hef_energy from it says little beyond hef_time.
"""
from __future__ import annotations

from typing import Callable

import psutil

from hwprof.measuring.devices import usable_cpus
from hwprof.measuring.meters.base import EnergyMeter

DEFAULT_WATTS_PER_CPU = 7.0    # a rough server-class average of TDP per core; the user may give the real TDP


def default_tdp_watts() -> float:
    return DEFAULT_WATTS_PER_CPU * len(usable_cpus())


def busy_fraction(t0, t1) -> float:
    """System-wide busy share of CPU time between two psutil.cpu_times() readings."""
    def split(t):
        total = sum(t)
        idle = t.idle + getattr(t, "iowait", 0.0)
        return total, idle
    total0, idle0 = split(t0)
    total1, idle1 = split(t1)
    d_total = total1 - total0
    if d_total <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - (idle1 - idle0) / d_total))


class EstimateMeter(EnergyMeter):
    source = "estimate"
    min_window_s = 0.25     # cpu_times ticks at 10 ms; a quarter second keeps the utilisation to ~2%

    def __init__(self, tdp_watts: float | None = None, cpu_times: Callable = psutil.cpu_times) -> None:
        super().__init__()
        self.tdp_watts = float(tdp_watts) if tdp_watts else default_tdp_watts()
        self.tdp_from_user = bool(tdp_watts)
        self._cpu_times = cpu_times
        self._c0 = None
        self.last_utilisation: float | None = None

    def _start(self) -> None:
        self._c0 = self._cpu_times()

    def _stop(self, window_s):
        util = busy_fraction(self._c0, self._cpu_times())
        self.last_utilisation = util
        return self.tdp_watts * util * window_s, self.source, False

    def describe(self) -> str:
        origin = "given by the user" if self.tdp_from_user else f"default {DEFAULT_WATTS_PER_CPU:g} W x {len(usable_cpus())} CPUs"
        return f"estimate: TDP {self.tdp_watts:g} W ({origin}) x measured CPU utilisation - not a measurement"
