"""The last-level cache from sysfs trees as Linux writes them, and the cold-memory rule built on it."""
import torch

from hwprof.kernels import caches
from hwprof.kernels.caches import cold_bytes, cold_bytes_for, last_level_cache_bytes, parse_size
from hwprof.kernels.linear import build_linear, copies_for
from hwprof.kernels.spec import MatmulSpec


def cache_tree(root, entries):
    for i, (level, kind, size) in enumerate(entries):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")


def test_sysfs_sizes():
    assert parse_size("32768K\n") == 32 * 2**20
    assert parse_size("1M") == 2**20 and parse_size("2G") == 2**31 and parse_size("512") == 512


def test_last_level_cache_is_the_highest_data_or_unified_level(tmp_path):
    # an AMD EPYC Zen 4 VM's cpu0: L1d, L1i, L2, L3
    cache_tree(tmp_path / "zen4", [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
                                   (3, "Unified", "32768K")])
    assert last_level_cache_bytes(tmp_path / "zen4") == 32 * 2**20
    # an Intel Xeon VM with AMX: 105 MiB of L3
    cache_tree(tmp_path / "xeon", [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                   (3, "Unified", "107520K")])
    assert last_level_cache_bytes(tmp_path / "xeon") == 105 * 2**20
    other = tmp_path / "l2only"
    cache_tree(other, [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                       (4, "Instruction", "64K")])
    assert last_level_cache_bytes(other) == 2 * 2**20
    assert last_level_cache_bytes(tmp_path / "absent") is None
    broken = tmp_path / "broken"
    cache_tree(broken, [(2, "Unified", "1M")])
    (broken / "index0" / "size").write_text("garbage")
    assert last_level_cache_bytes(broken) is None


def test_cold_memory_is_four_times_the_cache_and_at_least_64_mib():
    assert cold_bytes_for(32 * 2**20) == 128 * 2**20
    assert cold_bytes_for(105 * 2**20) == 420 * 2**20        # the Xeon: a fixed 128 MiB would be 1.2x its L3
    assert cold_bytes_for(2**20) == 64 * 2**20
    assert cold_bytes_for(None) == 4 * caches.UNKNOWN_LLC_BYTES


def test_a_layer_cycles_through_copies_that_exceed_this_machines_cache(monkeypatch):
    monkeypatch.setattr(caches, "last_level_cache_bytes", lambda: 105 * 2**20)
    assert cold_bytes(torch.device("cpu")) == 420 * 2**20
    spec = MatmulSpec((1, 768, 768), "fp32", kernel="linear")
    weight = 768 * 768 * 4
    assert copies_for(weight, cold_bytes(torch.device("cpu"))) == -(-420 * 2**20 // weight)
    # the case built with a small cache cycles through fewer copies: count the distinct weights it reads
    monkeypatch.setattr(caches, "last_level_cache_bytes", lambda: 2 * 2**20)
    case = build_linear(spec, torch.device("cpu"), seed=0)
    seen = set()
    import torch.nn.functional as F
    real = F.linear
    monkeypatch.setattr(F, "linear", lambda x, w, b=None: seen.add(w.data_ptr()) or real(x, w, b))
    for _ in range(3 * copies_for(weight, 64 * 2**20)):
        case.run()
    assert len(seen) == copies_for(weight, 64 * 2**20)
