"""The STREAM-style memory roof: cache sizes from sysfs trees as Linux writes them, byte counting, a real run."""
import pytest
import torch

import hwprof.measuring.stream as stream
from hwprof.measuring.stream import _parse_size, array_bytes_for, last_level_cache_bytes, measure_memory_roof


def _cache_tree(root, entries):
    for i, (level, kind, size) in enumerate(entries):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")


def test_sysfs_sizes():
    assert _parse_size("32768K\n") == 32 * 2**20
    assert _parse_size("1M") == 2**20 and _parse_size("2G") == 2**31 and _parse_size("512") == 512


def test_last_level_cache_is_the_highest_data_or_unified_level(tmp_path):
    # an AMD EPYC Zen 4 VM's cpu0: L1d, L1i, L2, L3
    _cache_tree(tmp_path, [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
                           (3, "Unified", "32768K")])
    assert last_level_cache_bytes(tmp_path) == 32 * 2**20
    other = tmp_path / "l2only"
    _cache_tree(other, [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                        (4, "Instruction", "64K")])
    assert last_level_cache_bytes(other) == 2 * 2**20
    assert last_level_cache_bytes(tmp_path / "absent") is None
    broken = tmp_path / "broken"
    _cache_tree(broken, [(2, "Unified", "1M")])
    (broken / "index0" / "size").write_text("garbage")
    assert last_level_cache_bytes(broken) is None


def test_arrays_are_four_times_the_llc_and_at_least_64_mib(monkeypatch):
    monkeypatch.setattr(stream, "last_level_cache_bytes", lambda: 32 * 2**20)
    assert array_bytes_for(torch.device("cpu")) == 128 * 2**20
    monkeypatch.setattr(stream, "last_level_cache_bytes", lambda: 2**20)
    assert array_bytes_for(torch.device("cpu")) == 64 * 2**20
    monkeypatch.setattr(stream, "last_level_cache_bytes", lambda: None)
    assert array_bytes_for(torch.device("cpu")) == 64 * 2**20


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
