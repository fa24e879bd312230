"""What else used the machine during a measurement window, and whether the kernel itself stalled.

On a 2-core VM a second busy process makes a 2-thread OpenMP kernel stall at every barrier for a
scheduler time slice: ~90x slower with tight timings, which no timing statistic can detect. Reading CPU
time at both ends of every window can: other processes' CPU time on the CPUs this run uses, the
hypervisor's steal, and this process's own busy time against the threads it runs.

Thresholds (README, "Trust"): measured on the development VM, quiet vs a neighbour process.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import psutil

from hwprof.measuring.cputime import percpu_reader, share

# Other processes' CPU use, in cores, above which a window is `contended`: a quiet 2-core VM shows
# < 0.03 cores of background (daemons, the terminal); one neighbour thread shows ~0.5-1 core.
CONTENDED_CORES = 0.15
CONTENDED_STEAL = 0.05          # share of the window the hypervisor gave to other guests
# A reference this much slower than the machine's quiet state (running.baseline) says the host is busy in
# ways no CPU-time reading shows: per round (measuring.rounds) and per block of rows.
SLOWER_THAN_QUIET = 0.05
STALL_RATIO = 0.35              # own busy cores below this share of the threads -> `stalled`


@dataclass(frozen=True)
class CpuReading:
    t: float
    percpu: Sequence            # psutil.cpu_times(percpu=True)
    own_s: float                # this process's user + system seconds, all threads


@dataclass(frozen=True)
class WindowLoad:
    window_s: float
    other_cores: float          # CPU used by other processes on this run's CPUs, in cores
    steal_frac: float
    own_cores: float            # this process's busy cores
    threads: int
    gpu_other_processes: int = 0

    @property
    def contended(self) -> bool:
        return (self.other_cores > CONTENDED_CORES or self.steal_frac > CONTENDED_STEAL
                or self.gpu_other_processes > 0)

    @property
    def stalled(self) -> bool:
        return self.threads > 1 and self.own_cores < STALL_RATIO * self.threads

    def flags(self, cpu_kernel: bool) -> list[str]:
        out = ["contended"] if self.contended else []
        if cpu_kernel and self.stalled:
            out.append("stalled")
        return out


def load_between(a: CpuReading, b: CpuReading, cpus: Sequence[int], threads: int,
                 gpu_other_processes: int = 0) -> WindowLoad:
    """Pure: the load of a window from the readings at its two ends."""
    window = max(b.t - a.t, 1e-9)
    s = share(a.percpu, b.percpu, cpus)
    own = max(0.0, b.own_s - a.own_s)
    # busy_s counts every process on these CPUs; this process's own time is the part that is not "other".
    other = max(0.0, s.busy_s - own)
    return WindowLoad(window, other / window, s.steal_fraction, own / window, threads, gpu_other_processes)


def combine_loads(loads: Sequence[WindowLoad]) -> WindowLoad | None:
    """Pure: the load over several windows, each weighted by its length (GPU neighbours: the most seen)."""
    if not loads:
        return None
    total = sum(w.window_s for w in loads)
    if total <= 0:
        return None

    def mean(attr: str) -> float:
        return sum(getattr(w, attr) * w.window_s for w in loads) / total
    return WindowLoad(total, mean("other_cores"), mean("steal_frac"), mean("own_cores"), loads[0].threads,
                      max(w.gpu_other_processes for w in loads))


class LoadProbe:
    """Reads CPU time (and, on a GPU, the other compute processes) at the ends of a window."""

    def __init__(self, cpus: Sequence[int], threads: int, gpu_processes: Callable[[], int] | None = None,
                 percpu: Callable[[], Sequence] | None = None, own: Callable[[], float] | None = None):
        self.cpus, self.threads = list(cpus), threads
        self._percpu = percpu or percpu_reader()
        proc = psutil.Process()
        self._own = own or (lambda: sum(proc.cpu_times()[:2]))
        self._gpu_processes = gpu_processes
        self._start: CpuReading | None = None

    def read(self) -> CpuReading:
        return CpuReading(time.perf_counter(), self._percpu(), self._own())

    def start(self) -> None:
        self._start = self.read()

    def stop(self) -> WindowLoad:
        end = self.read()
        gpu = 0
        if self._gpu_processes is not None:
            try:
                gpu = self._gpu_processes()
            except Exception:
                gpu = 0
        return load_between(self._start, end, self.cpus, self.threads, gpu)


def nvml_other_processes(nvml, handle) -> Callable[[], int]:
    """Compute processes on the GPU other than this one (NVML's running-process list)."""
    me = os.getpid()

    def count() -> int:
        procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        return sum(1 for p in procs if getattr(p, "pid", me) != me)
    return count


@dataclass
class Neighbour:
    pid: int
    name: str
    cores: float                # CPU used during the probe, in cores


@dataclass
class QuietCheck:
    seconds: float
    other_cores: float
    steal_frac: float
    top: list[Neighbour] = field(default_factory=list)

    @property
    def quiet(self) -> bool:
        return self.other_cores <= CONTENDED_CORES and self.steal_frac <= CONTENDED_STEAL

    def to_json(self) -> dict:
        return {"seconds": self.seconds, "other_cores": self.other_cores, "steal_frac": self.steal_frac,
                "quiet": self.quiet, "top": [n.__dict__ for n in self.top]}


def quiet_check(cpus: Sequence[int], seconds: float = 1.0, top_n: int = 3) -> QuietCheck:
    """What else uses the CPUs for `seconds`, with the busiest other processes by name."""
    me = os.getpid()
    procs = {}
    for p in psutil.process_iter(["pid", "name"]):
        if p.info["pid"] == me:
            continue
        try:
            procs[p.info["pid"]] = (p, p.info["name"] or "?", sum(p.cpu_times()[:2]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    probe = LoadProbe(cpus, threads=1)
    probe.start()
    time.sleep(seconds)
    load = probe.stop()
    top = []
    for pid, (p, name, t0) in procs.items():
        try:
            used = sum(p.cpu_times()[:2]) - t0
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if used > 0.01 * seconds:
            top.append(Neighbour(pid, name, used / load.window_s))
    top.sort(key=lambda n: -n.cores)
    return QuietCheck(load.window_s, load.other_cores, load.steal_frac, top[:top_n])


def wait_for_quiet(cpus: Sequence[int], timeout_s: float, probe_s: float = 1.0,
                   check: Callable[..., QuietCheck] = quiet_check) -> QuietCheck:
    """Probe until the machine is quiet or timeout_s has passed; the last check either way."""
    t0 = time.perf_counter()
    while True:
        qc = check(cpus, probe_s)
        if qc.quiet or time.perf_counter() - t0 + probe_s > timeout_s:
            return qc
