"""The STREAM-style memory roof: byte counting, a real run (its array size, 4x the cache: tests/kernels/test_caches.py)."""
import pytest
import torch

import hwprof.measuring.stream as stream
from hwprof.measuring.stream import measure_memory_roof


def test_copy_counts_two_words_and_triad_three(monkeypatch):
    times = iter([(0.5, 10), (0.5, 10)])                 # copy, then triad: the same best time
    monkeypatch.setattr(stream, "_best_seconds", lambda fn, timer, trials, budget_s: next(times))
    roof = measure_memory_roof(torch.device("cpu"), array_bytes=4 * 1000)
    assert roof.copy_bytes_per_s == pytest.approx(2 * 4 * 1000 / 0.5)
    assert roof.triad_bytes_per_s == pytest.approx(3 * 4 * 1000 / 0.5)
    assert roof.kernel == "triad" and roof.bytes_per_s == roof.triad_bytes_per_s and roof.array_bytes == 4000


def test_the_kernels_compute_what_stream_says():
    calls = []

    def record(fn, timer, trials, budget_s):
        calls.append(fn)
        return 1.0, 3
    import hwprof.measuring.stream as s
    orig = s._best_seconds
    try:
        s._best_seconds = record
        measure_memory_roof(torch.device("cpu"), array_bytes=4 * 8)
    finally:
        s._best_seconds = orig
    copy, triad = calls
    b = copy().clone()
    a = triad()
    assert torch.equal(a, b + 3.0 * 0.5)                  # a = b + 3 c (c = 0.5)
    assert torch.equal(copy(), a)                         # b = a


def test_a_real_memory_roof_on_this_cpu():
    roof = measure_memory_roof(torch.device("cpu"), array_bytes=8 * 2**20, trials=3, budget_s=0.2)
    assert 1e8 < roof.bytes_per_s < 1e13 and roof.trials >= 3 and "STREAM" in roof.method
