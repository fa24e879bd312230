"""An explicit estimate when no energy counter exists: TDP x measured CPU utilisation.

Always labelled `estimate` in results and reports: it scales with time and utilisation and cannot see
what a kernel does to power (vector width, memory traffic). hef_energy from it says little beyond hef_time.
"""
from __future__ import annotations

from typing import Callable

from hwprof.measuring.cputime import percpu_reader, share
from hwprof.measuring.cpu import usable_cpus
from hwprof.measuring.meters.base import EnergyMeter

DEFAULT_WATTS_PER_CPU = 7.0    # a rough server-class average of TDP per core; the user may give the real TDP


def default_tdp_watts(cpus: list[int] | None = None) -> float:
    """The default TDP share: DEFAULT_WATTS_PER_CPU for each CPU (the usable ones unless given)."""
    return DEFAULT_WATTS_PER_CPU * len(usable_cpus() if cpus is None else cpus)


class EstimateMeter(EnergyMeter):
    source = "estimate"
    min_window_s = 0.25     # cpu_times ticks at 10 ms; a quarter second keeps the utilisation to ~2%
    resolution_s = 0.01

    def __init__(self, tdp_watts: float | None = None, cpu_times: Callable[[], list] | None = None,
                 cpus: list[int] | None = None) -> None:
        super().__init__()
        self.cpus = list(cpus) if cpus is not None else usable_cpus()
        self.tdp_watts = float(tdp_watts) if tdp_watts else default_tdp_watts(self.cpus)
        self.tdp_from_user = bool(tdp_watts)
        self._cpu_times = cpu_times or percpu_reader()
        self._c0 = None
        self.last_utilisation: float | None = None

    def _start(self) -> None:
        self._c0 = self._cpu_times()

    def _stop(self, window_s):
        # Utilisation over the same CPUs the TDP share covers (this process's affinity), guest counted once,
        # steal not counted as work: the estimate then has no idle term - an idle CPU set estimates ~0 W.
        util = share(self._c0, self._cpu_times(), self.cpus).busy_fraction
        self.last_utilisation = util
        return self.tdp_watts * util * window_s, self.source, False

    def describe(self) -> str:
        origin = "given by the user" if self.tdp_from_user else f"default {DEFAULT_WATTS_PER_CPU:g} W x {len(self.cpus)} usable CPUs"
        return f"estimate: TDP {self.tdp_watts:g} W ({origin}) x measured utilisation of the same CPUs - not a measurement; no idle draw is included"
