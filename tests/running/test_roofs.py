"""Measured roofs: the size sweep's stopping rule, the cache per machine fingerprint, and rows placed
under them."""
import json
from contextlib import nullcontext

import pytest
import torch

import hwprof.running.roofs as roofs_mod
from hwprof.kernels.errors import Unsupported
from hwprof.measuring.devices import CpuInfo, DeviceInfo
from hwprof.measuring.stream import MemoryRoof
from hwprof.running import efficiency as eff
from hwprof.running.roofs import (ComputeRoof, Roofs, get_roofs, load_cached, machine_key, roofs_missing,
                                  sweep_compute_roof)

CPU = torch.device("cpu")


class FakeCase:
    def __init__(self, n):
        self.n, self.physical_flops, self.context = n, 2 * n ** 3, nullcontext
        self.run = lambda: n


class RateTimer:
    """A batch of the size-n case runs at rates[n] FLOP/s."""
    name, flushes = "fake", False

    def __init__(self, rates):
        self.rates, self.sizes = rates, []

    def time_batch(self, fn, k):
        n = fn()
        self.sizes.append(n)
        return k * 2 * n ** 3 / self.rates[n]


@pytest.fixture
def fake_cases(monkeypatch):
    built = []

    def build(spec, device):
        n = spec.shape[0]
        if spec.precision == "tf32":
            raise Unsupported("tf32 is a tensor-core mode")
        built.append(n)
        return FakeCase(n), None
    monkeypatch.setattr(roofs_mod, "build_case", build)
    monkeypatch.setattr(roofs_mod, "WINDOW_S", 0.0)
    monkeypatch.setattr(roofs_mod, "WARMUP_S", 0.0)
    return built


def test_the_sweep_stops_after_two_sizes_that_do_not_rise_and_keeps_the_best(fake_cases):
    # 256 is flat (+2.5%), 512 rises again, 1024 is flat, 2048 a little higher but still flat: stop
    rates = {64: 1e9, 128: 2e9, 256: 2.05e9, 512: 2.5e9, 1024: 2.0e9, 2048: 2.55e9, 4096: 9e9}
    roof = sweep_compute_roof("fp32", CPU, RateTimer(rates), 100.0, sizes=tuple(rates))
    assert fake_cases == [64, 128, 256, 512, 1024, 2048]
    assert roof == ComputeRoof("fp32", 2.55e9, "2048x2048x2048")    # the best seen, flat or not


def test_two_flat_sizes_in_a_row_end_the_sweep(fake_cases):
    rates = {64: 1e9, 128: 1.01e9, 256: 1.02e9, 512: 9e9}
    roof = sweep_compute_roof("fp32", CPU, RateTimer(rates), 100.0, sizes=tuple(rates))
    assert fake_cases == [64, 128, 256] and roof.flops_per_s == 1.02e9 and roof.shape == "256x256x256"


def test_an_unsupported_precision_has_no_roof_and_says_why(fake_cases):
    roof = sweep_compute_roof("tf32", CPU, RateTimer({}), 100.0, sizes=(64,))
    assert roof.flops_per_s is None and "tensor-core" in roof.reason


def test_the_budget_skips_sizes_predicted_not_to_fit(fake_cases):
    rates = {64: 2 * 64 ** 3 / 0.5, 128: 1e12}                 # one 64^3 call "takes" 0.5 s
    sweep_compute_roof("fp32", CPU, RateTimer(rates), 1.0, sizes=(64, 128))
    assert fake_cases == [64]


def test_attainable_is_the_lower_roof():
    assert eff.attainable(100.0, 10.0, 2.0) == 20.0           # memory-bound: 2 FLOP/B x 10 B/s
    assert eff.attainable(100.0, 10.0, 50.0) == 100.0         # compute-bound
    assert eff.attainable(None, 10.0, 2.0) == 20.0
    assert eff.attainable(100.0, None, 2.0) == 100.0 and eff.attainable(100.0, 10.0, None) == 100.0
    assert eff.attainable(None, None, 2.0) is None


def _info(threads=2, name="Test CPU", microarch="cpu family 25 model 17 stepping 1"):
    cpu = CpuInfo(name, "AuthenticAMD", ["avx2", "avx512_bf16", "sse"], 2, 2, 2, threads, 0.0, microarch=microarch)
    return DeviceInfo("cpu", name, "cpu", 2**34, {}, cpu)


def test_the_fingerprint_follows_model_features_threads_and_torch(monkeypatch):
    a = machine_key(_info())
    assert a["flags"] == ["avx2", "avx512_bf16"] and a["torch"] == torch.__version__
    assert roofs_mod.fingerprint(a) != roofs_mod.fingerprint(machine_key(_info(name="Other CPU")))
    zen5 = machine_key(_info(microarch="cpu family 26 model 2 stepping 1"))    # same name and flags, 2x the speed
    assert roofs_mod.fingerprint(a) != roofs_mod.fingerprint(zen5)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert machine_key(_info())["threads"] == 7


MEM = MemoryRoof(1e10, "triad", 9e9, 1e10, 2**26, 10, "test")


def test_roofs_are_cached_per_machine_and_missing_precisions_added(tmp_path, monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path))
    measured = []
    monkeypatch.setattr(roofs_mod, "measure_memory_roof", lambda device, timer=None: measured.append("memory") or MEM)
    monkeypatch.setattr(roofs_mod, "sweep_compute_roof",
                        lambda p, device, timer, budget: measured.append(p) or ComputeRoof(p, 1e9, "64x64x64"))
    info = _info()
    assert roofs_missing(info, ["fp32"])
    first = get_roofs(info, CPU, None, ["fp32", "bf16", "fp32"])
    assert measured == ["memory", "fp32", "bf16"] and not first.cached
    assert not roofs_missing(info, ["bf16", "fp32"]) and roofs_missing(info, ["int8"])
    assert roofs_missing(info, ["fp32"], remeasure=True)
    again = get_roofs(info, CPU, None, ["bf16"])
    assert measured == ["memory", "fp32", "bf16"] and again.cached and again.seconds < 1
    assert again.memory == MEM and again.compute["fp32"] == ComputeRoof("fp32", 1e9, "64x64x64")
    more = get_roofs(info, CPU, None, ["int8", "fp32"])
    assert measured[-1] == "int8" and not more.cached and set(load_cached(info).compute) == {"fp32", "bf16", "int8"}
    get_roofs(info, CPU, None, ["fp32"], remeasure=True)
    assert measured[-2:] == ["memory", "fp32"]
    path = next((tmp_path / "roofs").glob("*.json"))
    path.write_text("{ not json")
    assert load_cached(info) is None


def test_roofs_round_trip_through_run_json():
    r = Roofs("abc", {"kind": "cpu"}, "2026-11-24", MEM, {"fp32": ComputeRoof("fp32", 1e9, "64x64x64"),
                                                          "tf32": ComputeRoof("tf32", None, reason="no")})
    back = Roofs.from_json(json.loads(json.dumps(r.to_json())))
    assert back.compute == r.compute and back.memory == MEM and back.compute_roof("tf32") is None
    assert back.compute_roof("int8") is None and back.compute_roof("fp32") == 1e9


def test_a_real_sweep_on_this_cpu_reaches_a_plausible_rate():
    from hwprof.measuring.timing import CpuTimer
    roof = sweep_compute_roof("fp32", CPU, CpuTimer(), 0.5, sizes=(64, 128))
    assert roof.flops_per_s and 1e7 < roof.flops_per_s < 1e13 and roof.shape in ("64x64x64", "128x128x128")
