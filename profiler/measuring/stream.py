"""The memory roof: STREAM's copy and triad kernels, written with torch, on the measured device.

As in McCalpin's STREAM: arrays well beyond the last-level cache (here at least 4x it, and 64 MiB), bytes
counted as the kernel's reads plus writes (copy 2 words an element, triad 3; write-allocate traffic is not
counted), and the best time of repeated trials reported, since the roof is what the memory system can
sustain, not what a disturbed trial got. On a CPU the kernels run on the threads torch uses for the run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from hwprof.measuring.timing import Timer, timer_for

CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
MIN_ARRAY_BYTES = 64 * 2**20
LLC_MULTIPLE = 4


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


def _parse_size(text: str) -> int:
    """sysfs cache sizes: '32768K', '1M', '512'."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def last_level_cache_bytes(root: Path = CACHE_SYSFS) -> int | None:
    """Size of the highest-level data or unified cache cpu0 sees (None where sysfs does not say)."""
    best: tuple[int, int] | None = None
    for index in sorted(root.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and (best is None or level > best[0]):
            best = (level, size)
    return best[1] if best else None


def array_bytes_for(device: torch.device) -> int:
    """Bytes per array: LLC_MULTIPLE x the last-level cache (L2 on a GPU), at least MIN_ARRAY_BYTES."""
    if device.type == "cuda":
        llc = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or None
    else:
        llc = last_level_cache_bytes()
    return max(MIN_ARRAY_BYTES, LLC_MULTIPLE * (llc or 0))


def _best_seconds(fn, timer: Timer, trials: int, budget_s: float) -> tuple[float, int]:
    """Best time of up to `trials` single calls (at least 3), stopping early once budget_s is spent."""
    best, done, t_start = float("inf"), 0, time.perf_counter()
    while done < trials and (done < 3 or time.perf_counter() - t_start < budget_s):
        best = min(best, timer.time_batch(fn, 1))
        done += 1
    return best, done


def measure_memory_roof(device: torch.device, array_bytes: int | None = None, trials: int = 10,
                        budget_s: float = 2.0, timer: Timer | None = None) -> MemoryRoof:
    """STREAM copy (b = a) and triad (a = b + s*c) in fp32, timed by the run's timer (the device's own by
    default); one warm-up call each first-touches the pages."""
    timer = timer or timer_for(device)
    n = (array_bytes or array_bytes_for(device)) // 4
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
