"""CPU time accounting over a set of CPUs between two psutil readings (pure arithmetic on the readings).

Linux /proc/stat (which psutil reads) already counts guest time inside `user` and guest_nice inside `nice`,
so summing every field counts a VM host's guest time twice; steal is time the hypervisor gave to someone
else, so it is neither this machine's work nor idle. Both the energy estimate and the contention check
take their shares over the CPUs this process may run on, the same set the TDP share is scaled to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import psutil

_NOT_IN_TOTAL = ("guest", "guest_nice")          # already inside user / nice
_IDLE = ("idle", "iowait")


@dataclass(frozen=True)
class CpuShare:
    """CPU seconds over a window on a set of CPUs."""
    total_s: float        # all accounted time (guest counted once)
    busy_s: float         # user + nice + system + irq + softirq (guest inside user)
    idle_s: float         # idle + iowait
    steal_s: float        # taken by the hypervisor for other guests

    @property
    def busy_fraction(self) -> float:
        return min(1.0, max(0.0, self.busy_s / self.total_s)) if self.total_s > 0 else 0.0

    @property
    def steal_fraction(self) -> float:
        return min(1.0, max(0.0, self.steal_s / self.total_s)) if self.total_s > 0 else 0.0


def _fields(t) -> dict[str, float]:
    return t._asdict() if hasattr(t, "_asdict") else dict(vars(t))


def share(before: Sequence, after: Sequence, cpus: Sequence[int]) -> CpuShare:
    """CPU time on `cpus` between two psutil.cpu_times(percpu=True) readings."""
    total = busy = idle = steal = 0.0
    for i in cpus:
        if i >= len(before) or i >= len(after):
            continue
        b, a = _fields(before[i]), _fields(after[i])
        d = {k: a[k] - b[k] for k in a if k in b}
        t = sum(v for k, v in d.items() if k not in _NOT_IN_TOTAL)
        i_s = sum(d.get(k, 0.0) for k in _IDLE)
        s_s = d.get("steal", 0.0)
        total += t
        idle += i_s
        steal += s_s
        busy += t - i_s - s_s
    return CpuShare(max(total, 0.0), max(busy, 0.0), max(idle, 0.0), max(steal, 0.0))


def percpu_reader() -> Callable[[], list]:
    return lambda: psutil.cpu_times(percpu=True)
