"""The device's last-level cache, and how much memory a kernel must cycle through for its operands to come from
memory rather than from that cache (the memory roof's arrays, a linear layer's weight copies, a shallow step's
layer copies).

One rule for all of them: LLC_MULTIPLE times the last-level cache (L2 on a GPU), at least MIN_COLD_BYTES. A
fixed figure does not hold across CPUs: 128 MiB is 4x a Zen 4's 32 MiB L3, but 1.2x a Xeon's 105 MiB, where a
layer timed alone then finds part of its weight cached and reads faster than in the step.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
LLC_MULTIPLE = 4
MIN_COLD_BYTES = 64 * 2**20
UNKNOWN_LLC_BYTES = 32 * 2**20      # assumed where the system does not say: a common server L3 slice


def parse_size(text: str) -> int:
    """sysfs cache sizes: '32768K', '1M', '512'."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


@functools.lru_cache(maxsize=None)
def last_level_cache_bytes(root: Path = CACHE_SYSFS) -> int | None:
    """Size of the highest-level data or unified cache cpu0 sees (None where sysfs does not say). Read once a
    tree: every layer built and every case's memory estimate asks."""
    best: tuple[int, int] | None = None
    for index in sorted(root.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and (best is None or level > best[0]):
            best = (level, size)
    return best[1] if best else None


def device_cache_bytes(device: torch.device | None) -> int | None:
    """The last-level cache of `device` (a CUDA device's L2, the CPU's LLC); None where unknown."""
    if device is not None and device.type == "cuda":
        return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or None
    return last_level_cache_bytes()


def cold_bytes_for(llc_bytes: int | None) -> int:
    """Pure: the memory to cycle through so that a pass over it evicts a cache of `llc_bytes`."""
    return max(MIN_COLD_BYTES, LLC_MULTIPLE * (llc_bytes or UNKNOWN_LLC_BYTES))


def cold_bytes(device: torch.device | None = None) -> int:
    return cold_bytes_for(device_cache_bytes(device))
