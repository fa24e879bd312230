"""The STREAM-style memory roof: array sizes from the cache (kernels.caches), byte counting, a real run."""
import pytest
import torch

import hwprof.measuring.stream as stream
from hwprof.kernels import caches
from hwprof.measuring.stream import array_bytes_for, measure_memory_roof


def test_arrays_are_four_times_the_llc_and_at_least_64_mib(monkeypatch):
    monkeypatch.setattr(caches, "last_level_cache_bytes", lambda: 32 * 2**20)
    assert array_bytes_for(torch.device("cpu")) == 128 * 2**20
    monkeypatch.setattr(caches, "last_level_cache_bytes", lambda: 2**20)
    assert array_bytes_for(torch.device("cpu")) == 64 * 2**20
    monkeypatch.setattr(caches, "last_level_cache_bytes", lambda: None)
    assert array_bytes_for(torch.device("cpu")) == 4 * caches.UNKNOWN_LLC_BYTES


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
