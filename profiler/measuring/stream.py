"""The memory roof: STREAM's copy and triad kernels, written with torch, on the measured device.

As in McCalpin's STREAM: arrays well beyond the last-level cache (here at least 4x it, and 64 MiB), bytes
counted as the kernel's reads plus writes (copy 2 words an element, triad 3; write-allocate traffic is not
counted), and the best time of repeated trials reported, since the roof is what the memory system can
sustain, not what a disturbed trial got. On a CPU the kernels run on the threads torch uses for the run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from hwprof.measuring.timing import Timer, timer_for


@dataclass(frozen=True)
class MemoryRoof:
    bytes_per_s: float           # best of copy and triad
    kernel: str                  # the one that reached it
    copy_bytes_per_s: float
    triad_bytes_per_s: float
    array_bytes: int
    trials: int
    method: str

    def to_json(self) -> dict:
        return asdict(self)


def _best_seconds(fn, timer: Timer, trials: int, budget_s: float) -> tuple[float, int]:
    """Best time of up to `trials` single calls (at least 3), stopping early once budget_s is spent."""
    best, done, t_start = float("inf"), 0, time.perf_counter()
    while done < trials and (done < 3 or time.perf_counter() - t_start < budget_s):
        best = min(best, timer.time_batch(fn, 1))
        done += 1
    return best, done


def measure_memory_roof(device: torch.device, array_bytes: int, trials: int = 10,
                        budget_s: float = 2.0, timer: Timer | None = None) -> MemoryRoof:
    """STREAM copy (b = a) and triad (a = b + s*c) in fp32, timed by the run's timer (the device's own by
    default), over arrays of `array_bytes` each (the caller's: 4x the cache, kernels.caches); one warm-up call
    each first-touches the pages."""
    timer = timer or timer_for(device)
    n = array_bytes // 4
    a = torch.ones(n, dtype=torch.float32, device=device)
    b = torch.full((n,), 2.0, dtype=torch.float32, device=device)
    c = torch.full((n,), 0.5, dtype=torch.float32, device=device)
    copy = lambda: b.copy_(a)                                  # noqa: E731
    triad = lambda: torch.add(b, c, alpha=3.0, out=a)          # noqa: E731
    copy(), triad()
    t_copy, k1 = _best_seconds(copy, timer, trials, budget_s / 2)
    t_triad, k2 = _best_seconds(triad, timer, trials, budget_s / 2)
    word = 4
    copy_bw, triad_bw = 2 * word * n / t_copy, 3 * word * n / t_triad
    kernel, bw = ("triad", triad_bw) if triad_bw >= copy_bw else ("copy", copy_bw)
    where = "device memory" if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    method = (f"STREAM-style copy and triad in torch fp32, {n * word / 2**20:.0f} MiB arrays, {where}, "
              f"best of {min(k1, k2)}+ trials; reads + writes counted, no write-allocate")
    return MemoryRoof(bw, kernel, copy_bw, triad_bw, n * word, min(k1, k2), method)
