"""Measured roofs: the size sweep's stopping rule, the cache per machine fingerprint, and rows placed
under them."""
import json
import math
from contextlib import nullcontext

import pytest
import torch

import hwprof.running.roofs as roofs_mod
from hwprof.running import roof_store
from hwprof.kernels.errors import Unsupported
from hwprof.measuring.cpu import CpuInfo
from hwprof.measuring.devices import DeviceInfo
from hwprof.measuring.stream import MemoryRoof
from hwprof.running import efficiency as eff
from hwprof.running.roofs import (ComputeRoof, Roofs, get_roofs, load_cached, machine_key, roofs_missing,
                                  sweep_compute_roof)

CPU = torch.device("cpu")


class FakeCase:
    def __init__(self, shape):
        self.shape, self.physical_flops, self.context = shape, 2 * math.prod(shape), nullcontext
        self.run = lambda: FakeCase.ran.append(shape)
    ran: list = []


class RateTimer:
    """A batch of the case of shape s runs at rates[s] FLOP/s (rates keyed by shape; a bare n means n^3);
    time moves on a fake clock, so budgets are exact."""
    name, flushes = "fake", False

    def __init__(self, rates, clock=None, default=1e6):
        self.rates = {(k, k, k) if isinstance(k, int) else k: v for k, v in rates.items()}
        self.clock, self.default = clock, default

    def time_batch(self, fn, k):
        FakeCase.ran.clear()
        fn()
        shape = FakeCase.ran[-1]
        t = k * 2 * math.prod(shape) / self.rates.get(shape, self.default)
        if self.clock is not None:
            self.clock.advance(t)
        return t


@pytest.fixture
def fake_cases(monkeypatch):
    built = []

    def build(spec, device, call=None):
        if spec.precision == "tf32":
            raise Unsupported("tf32 is a tensor-core mode")
        built.append(spec.shape if len(set(spec.shape)) > 1 else spec.shape[0])
        case = FakeCase(tuple(spec.shape))
        return case, call(case.run) if call else case.run()
    monkeypatch.setattr(roofs_mod, "build_case", build)
    monkeypatch.setattr(roofs_mod, "WINDOW_S", 0.0)
    monkeypatch.setattr(roofs_mod, "WARMUP_S", 0.0)
    return built


def squares(built):
    return [b for b in built if isinstance(b, int)]


def test_the_sweep_stops_after_two_sizes_that_do_not_rise_and_keeps_the_best(fake_cases):
    # 256 is flat (+2.5%), 512 rises again, 1024 is flat, 2048 a little higher but still flat: stop
    rates = {64: 1e9, 128: 2e9, 256: 2.05e9, 512: 2.5e9, 1024: 2.0e9, 2048: 2.55e9, 4096: 9e9}
    roof = sweep_compute_roof("fp32", CPU, RateTimer(rates), 100.0, sizes=(64, 128, 256, 512, 1024, 2048, 4096))
    assert squares(fake_cases) == [64, 128, 256, 512, 1024, 2048]
    assert (roof.flops_per_s, roof.shape) == (2.55e9, "2048x2048x2048")    # the best seen, flat or not


def test_two_flat_sizes_in_a_row_end_the_sweep(fake_cases):
    rates = {64: 1e9, 128: 1.01e9, 256: 1.02e9, 512: 9e9}
    roof = sweep_compute_roof("fp32", CPU, RateTimer(rates), 100.0, sizes=(64, 128, 256, 512))
    assert squares(fake_cases) == [64, 128, 256] and roof.flops_per_s == 1.02e9 and roof.shape == "256x256x256"


def test_tall_wide_deep_and_the_suites_own_shapes_are_tried_and_can_set_the_roof(fake_cases):
    """On a Xeon with AMX, bf16 [512, 1024, 1024] ran at 1.68 TFLOP/s where the square sweep's best,
    1024^3, reached 1.12: a roof must try the shapes the suite runs, and more than squares."""
    rates = {256: 0.9e9, 512: 1.0e9, (512, 1024, 1024): 1.5e9, (256, 1024, 512): 1.2e9}
    roof = sweep_compute_roof("bf16", CPU, RateTimer(rates, default=1e9), 100.0, sizes=(256, 512),
                              extra=[[512, 1024, 1024]])
    assert fake_cases == [256, 512, (512, 1024, 1024), (1024, 256, 512), (256, 1024, 512), (256, 256, 2048)]
    assert (roof.flops_per_s, roof.shape) == (1.5e9, "512x1024x1024")
    assert set(roof.tried) == {"256x256x256", "512x512x512", "1024x256x512", "256x1024x512", "256x256x2048",
                               "512x1024x1024"}


def test_shapes_tried_before_are_not_measured_again(fake_cases):
    before = ComputeRoof("bf16", 2e9, "256x256x256", tried=("256x256x256", "512x512x512"))
    roof = sweep_compute_roof("bf16", CPU, RateTimer({}, default=1e9), 100.0, sizes=(256, 512), extra=[[64, 64, 64]],
                              previous=before)
    assert 256 not in fake_cases and 512 not in fake_cases and 64 in fake_cases
    assert roof.flops_per_s == 2e9 and "64x64x64" in roof.tried       # the earlier best stands


def test_an_unsupported_precision_has_no_roof_and_says_why(fake_cases):
    roof = sweep_compute_roof("tf32", CPU, RateTimer({}), 100.0, sizes=(64,))
    assert roof.flops_per_s is None and "tensor-core" in roof.reason


def test_the_budget_skips_shapes_predicted_not_to_fit(fake_cases):
    rates = {64: 2 * 64 ** 3 / 0.3, 128: 1e12}                 # one 64^3 call "takes" 0.3 s
    sweep_compute_roof("fp32", CPU, RateTimer(rates), 1.0, sizes=(64, 128))
    assert 128 not in fake_cases and fake_cases[0] == 64       # 128^3 would take 8 x 0.3 s


def test_a_call_of_seconds_is_its_own_measurement_and_the_sweep_stays_within_its_cap(monkeypatch):
    """fp8 `_scaled_mm` ran oneDNN's reference kernel on the Xeon at ~40 MFLOP/s: 256^3 takes 0.84 s, 512^3
    6.4 s. The sweep must cost at most twice its budget plus one call, not warm up and window such a call."""
    from tests.measuring.fakes import FakeClock
    clock = FakeClock()
    monkeypatch.setattr(roofs_mod.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr("hwprof.measuring.measure.time.perf_counter", clock.perf_counter)
    built = []

    def build(spec, device, call=None):
        built.append(tuple(spec.shape))
        case = FakeCase(tuple(spec.shape))
        return case, call(case.run)
    monkeypatch.setattr(roofs_mod, "build_case", build)
    slow = RateTimer({}, clock, default=4e7)                   # every shape at 40 MFLOP/s
    roof = sweep_compute_roof("fp8_e4m3", CPU, slow, 1.0, sizes=(512, 1024))
    assert built == [(512, 512, 512)] and clock.now - 1024.0 == pytest.approx(2 * 512 ** 3 / 4e7)
    assert roof.flops_per_s == pytest.approx(4e7)
    short = RateTimer({}, clock, default=4e7)
    t0, built[:] = clock.now, []
    sweep_compute_roof("fp8_e4m3", CPU, short, 1.0, sizes=(256, 512))
    call = 2 * 256 ** 3 / 4e7                                  # 0.84 s: warmed up and windowed, then nothing more
    assert built == [(256, 256, 256)] and clock.now - t0 <= 2 * 1.0 + call


def _row(config_id, precision, shape, flops, t, t_high, kernel="matmul", sparsity="dense"):
    from hwprof.running.results import Row
    return Row(config_id, kernel, shape, precision, sparsity, 1.0, "default", "fwd", "cpu", "ok",
               physical_flops=flops, time_s_median=t, time_s_ci_high=t_high)


def test_a_row_beyond_its_roof_and_its_noise_raises_the_roof_and_says_who(tmp_path, monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path))
    roofs = Roofs("fp", {}, "2026-01-01", MEM, {"bf16": ComputeRoof("bf16", 1.12e12, "1024x1024x1024")})
    flops = 2 * 512 * 1024 * 1024
    within = _row("a", "bf16", "512x512x512", flops, flops / 1.15e12, flops / 1.10e12)   # its interval reaches the roof
    beyond = _row("b", "bf16", "512x1024x1024", flops, flops / 1.68e12, flops / 1.60e12)
    sparse = _row("c", "bf16", "512x1024x1024", flops, flops / 9e12, flops / 9e12, sparsity="unstructured")
    assert roofs_mod.raise_roofs(roofs, [within, sparse], "run-1") == []
    [said] = roofs_mod.raise_roofs(roofs, [within, beyond], "run-2")
    r = roofs.compute["bf16"]
    assert r.flops_per_s == pytest.approx(1.68e12) and r.shape == "512x1024x1024" and "by b" in said
    assert r.raised_by["run"] == "run-2" and r.raised_by["from_flops_per_s"] == 1.12e12
    assert json.loads(next(tmp_path.glob("roofs/*.json")).read_text())["compute"]["bf16"]["raised_by"]["config_id"] == "b"


def test_a_row_is_raised_against_the_wider_roof_it_is_held_to(tmp_path, monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path))
    roofs = Roofs("fp", {}, "2026-01-01", MEM, {"bf16": ComputeRoof("bf16", 1.35e9, "1024x1024x1024"),
                                                 "fp32": ComputeRoof("fp32", 1.2e11, "1024x1024x1024")})
    flops = 2 * 512 * 1024 * 1024
    slow_loop = _row("a", "bf16", "512x1024x1024", flops, flops / 1.6e9, flops / 1.5e9)   # beats its own only
    assert roofs_mod.raise_roofs(roofs, [slow_loop], "run-1") == []
    assert roofs.compute_roof("bf16") == 1.2e11
    fast = _row("b", "bf16", "512x1024x1024", flops, flops / 1.5e11, flops / 1.4e11)
    [said] = roofs_mod.raise_roofs(roofs, [fast], "run-2")
    assert roofs.compute["bf16"].flops_per_s == pytest.approx(1.5e11) and "120 -> 150" in said
    assert roofs.compute["bf16"].raised_by["from_flops_per_s"] == 1.2e11


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
    monkeypatch.setattr(roofs_mod, "measure_memory_roof", lambda device, array_bytes, timer=None: measured.append("memory") or MEM)
    monkeypatch.setattr(roofs_mod, "sweep_compute_roof",
                        lambda p, device, timer, budget, extra=(), previous=None: measured.append(p) or
                        ComputeRoof(p, 1e9, "64x64x64", tried=("64x64x64", *("x".join(map(str, x)) for x in extra))))
    info = _info()
    assert roofs_missing(info, ["fp32"])
    first = get_roofs(info, CPU, None, ["fp32", "bf16", "fp32"])
    assert measured == ["memory", "fp32", "bf16"] and not first.cached
    assert not roofs_missing(info, ["bf16", "fp32"]) and roofs_missing(info, ["int8"])
    assert roofs_missing(info, ["fp32"], remeasure=True)
    again = get_roofs(info, CPU, None, ["bf16"])
    assert measured == ["memory", "fp32", "bf16"] and again.cached and again.seconds < 1
    assert again.memory == MEM and again.compute["fp32"].flops_per_s == 1e9
    suite_shape = {"bf16": [[512, 1024, 1024]]}                   # a shape of the suite's the sweep has not tried
    assert roofs_missing(info, suite_shape)
    get_roofs(info, CPU, None, suite_shape)
    assert measured[-1] == "bf16" and not roofs_missing(info, suite_shape)
    more = get_roofs(info, CPU, None, ["int8", "fp32"])
    assert measured[-1] == "int8" and not more.cached and set(load_cached(info).compute) == {"fp32", "bf16", "int8"}
    get_roofs(info, CPU, None, ["fp32"], remeasure=True)
    assert measured[-2:] == ["memory", "fp32"]
    path = next((tmp_path / "roofs").glob("*.json"))
    path.write_text("{ not json")
    assert load_cached(info) is None


@pytest.mark.parametrize("bad, precision", [
    ({"flops_per_s": "fast"}, "fp32"), ({"flops_per_s": -1.0}, "fp32"), ({"flops_per_s": True}, "fp32"),
    ({"tried": "64x64x64"}, "fp32"), ({"precision": "bf16"}, "fp32"), ({"colour": "red"}, "fp32")])
def test_a_cached_roof_of_the_wrong_type_is_left_out_said_and_measured_again(tmp_path, monkeypatch, bad, precision):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path))
    measured = []
    monkeypatch.setattr(roofs_mod, "measure_memory_roof", lambda device, array_bytes, timer=None: measured.append("memory") or MEM)
    monkeypatch.setattr(roofs_mod, "sweep_compute_roof", lambda p, device, timer, budget, extra=(), previous=None:
                        measured.append(p) or ComputeRoof(p, 1e9, "64x64x64", tried=("64x64x64",)))
    info = _info()
    get_roofs(info, CPU, None, ["fp32", "bf16"])
    path = next((tmp_path / "roofs").glob("*.json"))
    doc = json.loads(path.read_text())
    doc["compute"][precision].update(bad)
    path.write_text(json.dumps(doc))
    warned = []
    assert roofs_missing(info, ["fp32", "bf16"], warn=warned.append)
    assert len(warned) == 1 and f"compute roof '{precision}'" in warned[0] and "measured again" in warned[0]
    assert precision not in json.loads(path.read_text())["compute"]        # rewritten without it
    roofs = get_roofs(info, CPU, None, ["fp32", "bf16"])
    assert measured[-1] == precision and roofs.compute[precision].flops_per_s == 1e9
    assert roofs.compute["bf16" if precision == "fp32" else "fp32"].flops_per_s == 1e9     # the other one kept


@pytest.mark.parametrize("memory", [None, "fast", {"bytes_per_s": "fast"}, {**MEM.to_json(), "trials": 0},
                                    {**MEM.to_json(), "bytes_per_s": float("inf")}])
def test_a_cached_memory_roof_that_is_not_one_means_all_is_measured_again(tmp_path, monkeypatch, memory):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path))
    doc = Roofs("fp", {"kind": "cpu"}, "2026-12-01", MEM, {"fp32": ComputeRoof("fp32", 1e9)}).to_json()
    doc["memory"] = memory
    roofs, problems = roofs_mod.parse_cached(json.loads(json.dumps(doc)))
    assert roofs is None and problems == ["the memory roof is not one"]
    warned = []
    monkeypatch.setattr(roof_store, "read_cached", lambda kind, fp: json.loads(json.dumps(doc)))
    assert load_cached(_info(), warned.append) is None and "all measured again" in warned[0]


def test_roofs_round_trip_through_run_json():
    r = Roofs("abc", {"kind": "cpu"}, "2026-11-24", MEM, {"fp32": ComputeRoof("fp32", 1e9, "64x64x64"),
                                                          "tf32": ComputeRoof("tf32", None, reason="no")})
    back = Roofs.from_json(json.loads(json.dumps(r.to_json())))
    assert back.compute == r.compute and back.memory == MEM and back.compute["tf32"].flops_per_s is None
    assert back.compute_roof("fp64") is None and back.compute_roof("int8") == 1e9 and back.compute_roof("fp32") == 1e9


def test_a_real_sweep_on_this_cpu_reaches_a_plausible_rate():
    from hwprof.measuring.timing import CpuTimer
    roof = sweep_compute_roof("fp32", CPU, CpuTimer(), 0.5, sizes=(64, 128))
    assert roof.flops_per_s and 1e7 < roof.flops_per_s < 1e13 and roof.shape in roof.tried
