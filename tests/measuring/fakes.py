"""A fake clock for the measuring loops: time moves only when a fake kernel, flush or sleep says so, so
loop boundaries (a window of exactly its minimum, a budget spent to the tick) can be tested exactly."""
from __future__ import annotations


class FakeClock:
    def __init__(self):
        self.now = 1024.0            # not 0: a loop that adds its start time instead of subtracting it shows
        self.slept: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def advance(self, s: float) -> None:
        self.now += s


class ClockTimer:
    """Each batch takes per_call x n seconds of fake time (per_call from a repeating list)."""
    name = "fake"

    def __init__(self, clock: FakeClock, per_call, flushes: bool = False, flush_s: float = 0.0):
        self.clock, self.per_call, self.i = clock, list(per_call), 0
        self.flushes, self.flush_s = flushes, flush_s
        self.batches: list[int] = []
        self.flush_chunks: list[int] = []

    def time_batch(self, fn, n):
        t = self.per_call[self.i % len(self.per_call)] * n
        self.i += 1
        self.batches.append(n)
        self.clock.advance(t)
        return t

    def flush_only(self, n):
        self.flush_chunks.append(n)
        self.clock.advance(self.flush_s * n)
