import time

import pytest
import torch

from hwprof.measuring.timing import CpuTimer, CudaTimer, timer_for


def test_cpu_timer_times_n_calls():
    calls = []
    t = CpuTimer().time_batch(lambda: (calls.append(1), time.sleep(0.002)), 5)
    assert len(calls) == 5
    assert 0.01 <= t < 0.5


def test_timer_for_picks_by_device_type():
    assert isinstance(timer_for(torch.device("cpu")), CpuTimer)
    assert timer_for(torch.device("cpu")).name == "perf_counter_ns"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only build")
def test_cuda_timer_is_not_built_without_cuda():
    with pytest.raises(Exception):
        CudaTimer(torch.device("cuda", 0), flush_l2=True)


class _Log:
    def __init__(self):
        self.events = []


def _fake_cuda(monkeypatch, log):
    """torch.cuda pieces the timer uses, recording what happens in order (no GPU needed)."""
    import contextlib

    current = {"device": 0}

    class Stream:
        def __init__(self, index):
            self.index = index

    class Event:
        clock = 0.0

        def __init__(self, enable_timing=False):
            self.t = None

        def record(self, stream=None):
            # torch: an event recorded without a stream lands on the *current* device's stream
            where = stream.index if stream is not None else current["device"]
            log.events.append(("record", where))
            Event.clock += 1.0
            self.t = Event.clock

        def synchronize(self):
            log.events.append(("sync",))

        def elapsed_time(self, other):
            return (other.t - self.t) * 1.0      # ms

    @contextlib.contextmanager
    def device(d):
        prev = current["device"]
        current["device"] = d.index
        log.events.append(("device", d.index))
        try:
            yield
        finally:
            current["device"] = prev

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: Stream(d.index if d is not None else current["device"]))
    return current


def test_events_are_recorded_on_the_measured_devices_stream(monkeypatch):
    """Source: torch.cuda.Event.record() without a stream uses torch.cuda.current_stream() of the *current*
    device; for cuda:1 the timer must make cuda:1 current or pass its stream."""
    log = _Log()
    _fake_cuda(monkeypatch, log)
    timer = CudaTimer(torch.device("cuda", 1))
    calls = []
    timer.time_batch(lambda: (calls.append(1), log.events.append(("call",))), 3)
    records = [e for e in log.events if e[0] == "record"]
    assert records == [("record", 1), ("record", 1)] and len(calls) == 3
    assert log.events[0] == ("device", 1)


def test_l2_flush_precedes_every_call_and_stays_outside_the_timed_events(monkeypatch):
    """Source: triton.testing.do_bench clears the cache before *each* call and times each call with its
    own start/end events."""
    log = _Log()
    _fake_cuda(monkeypatch, log)

    class Buf:
        def zero_(self):
            log.events.append(("flush",))

    monkeypatch.setattr(CudaTimer, "_make_flush_buffer", lambda self: Buf())
    timer = CudaTimer(torch.device("cuda", 0), flush_l2=True)
    t = timer.time_batch(lambda: log.events.append(("call",)), 3)
    seq = [e[0] for e in log.events if e[0] in ("flush", "record", "call")]
    assert seq == ["flush", "record", "call", "record"] * 3
    assert t == pytest.approx(3 * 1e-3)          # three 1 ms intervals, the flushes not counted
    assert sum(1 for e in log.events if e[0] == "sync") == 1
    assert timer.flushes is True
