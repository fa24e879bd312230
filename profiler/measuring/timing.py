"""Timers: how long `n` back-to-back calls of a callable take on one device.

A timer only times; the repeat/stop policy lives in `measure`. The CPU timer reads
`perf_counter_ns` around a batch; the CUDA timer records events around a batch on the current
stream and synchronises only on the end event, so host overhead between calls is not counted
once the GPU is kept busy.
"""
from __future__ import annotations

import time
from typing import Callable, Protocol

import torch


class Timer(Protocol):
    name: str

    def time_batch(self, fn: Callable[[], object], n: int) -> float:
        """Seconds for n calls of fn (all work finished)."""


class CpuTimer:
    name = "perf_counter_ns"

    def time_batch(self, fn: Callable[[], object], n: int) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - t0) * 1e-9


class CudaTimer:
    """CUDA events around each batch; optional L2 flush (a write larger than L2) before the batch."""
    name = "cuda-events"

    def __init__(self, device: torch.device, flush_l2: bool = False):
        self.device = device
        self._flush_buf = None
        if flush_l2:
            l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 64 * 2**20) or 64 * 2**20
            self._flush_buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device=device)

    def time_batch(self, fn: Callable[[], object], n: int) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        if self._flush_buf is not None:
            self._flush_buf.zero_()        # evicts the operands; the flush itself is before `start`
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3


def timer_for(device: torch.device, flush_l2: bool = False) -> Timer:
    return CudaTimer(device, flush_l2) if device.type == "cuda" else CpuTimer()
