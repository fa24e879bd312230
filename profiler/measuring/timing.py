"""Timers: how long `n` back-to-back calls of a callable take on one device.

A timer only times; the repeat/stop policy lives in `measure`. The CPU timer reads `perf_counter_ns`
around a batch. The CUDA timer makes the measured device current and records events on *its* current
stream (an event recorded without a stream lands on the current device's stream, which for cuda:N, N > 0,
would be cuda:0's idle stream), synchronising only on the end event. With an L2 flush it does what
triton's do_bench does: clear the cache before every call and time every call with its own pair of
events, so no call after the first runs warm and the flushes are outside the timed intervals.
"""
from __future__ import annotations

import time
from typing import Callable, Protocol

import torch


class Timer(Protocol):
    name: str
    flushes: bool            # whether each call is preceded by an untimed cache flush

    def time_batch(self, fn: Callable[[], object], n: int) -> float:
        """Seconds for n calls of fn (all work finished; flushes not counted)."""

    def flush_only(self, n: int) -> None:
        """Run n flushes (and nothing else), finished, so their energy can be measured apart."""


class CpuTimer:
    name = "perf_counter_ns"
    flushes = False

    def time_batch(self, fn: Callable[[], object], n: int) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - t0) * 1e-9

    def flush_only(self, n: int) -> None:
        pass


class CudaTimer:
    """CUDA events on the measured device's current stream; optional per-call L2 flush."""
    name = "cuda-events"

    def __init__(self, device: torch.device, flush_l2: bool = False):
        self.device = device
        self.flushes = flush_l2
        self._flush_buf = self._make_flush_buffer() if flush_l2 else None

    def _make_flush_buffer(self) -> torch.Tensor:
        # twice the L2 (triton's do_bench uses a 256 MB buffer; 2x L2 evicts it on every current GPU)
        l2 = getattr(torch.cuda.get_device_properties(self.device), "L2_cache_size", 0) or 64 * 2**20
        return torch.empty(2 * l2 // 4, dtype=torch.int32, device=self.device)

    def time_batch(self, fn: Callable[[], object], n: int) -> float:
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            if self._flush_buf is None:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record(stream)
                for _ in range(n):
                    fn()
                end.record(stream)
                end.synchronize()
                return start.elapsed_time(end) * 1e-3
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            for s, e in zip(starts, ends):
                self._flush_buf.zero_()          # cold L2 for every call; not inside the events
                s.record(stream)
                fn()
                e.record(stream)
            ends[-1].synchronize()
            return sum(s.elapsed_time(e) for s, e in zip(starts, ends)) * 1e-3

    def flush_only(self, n: int) -> None:
        if self._flush_buf is None:
            return
        with torch.cuda.device(self.device):
            for _ in range(n):
                self._flush_buf.zero_()
            torch.cuda.synchronize(self.device)


def timer_for(device: torch.device, flush_l2: bool = False) -> Timer:
    return CudaTimer(device, flush_l2) if device.type == "cuda" else CpuTimer()
