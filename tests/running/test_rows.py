"""Row assembly: every number in a results row is tied to the measurement by an exact identity.

These are the checks that catch a planted bug in the headline numbers (rates doubled, doublings with
the wrong sign, joules of one window divided by the calls of another, power scaled, mfu off)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprof.kernels import Case
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec
from hwprof.measuring.devices import DeviceInfo
from hwprof.measuring.contention import WindowLoad
from hwprof.measuring.meters.base import EnergyReading
from hwprof.measuring.rounds import RoundsMeasurement, Side
from hwprof.measuring.peaks import Peak
from hwprof.measuring.stats import summarize
from hwprof.running.rows import base_row, failure_reason, ok_row, with_hef

CPU = torch.device("cpu")
REF = MatmulSpec((64, 64, 64), "fp32")
BF16 = MatmulSpec((64, 64, 64), "bf16")


def _case(spec, physical=None, bytes_moved=3 * 64 * 64 * 4, density=1.0):
    return Case(spec=spec, run=lambda: None, logical_flops=spec.logical_flops,
                physical_flops=spec.logical_flops if physical is None else physical, density=density,
                backend=spec.backend, bytes_moved=bytes_moved, error_fn=lambda out: 0.0)


def _measurement(per_call_s, calls=1000, window_s=None, window_j=None, source="rapl", samples=None,
                 hef=None, hef_ci=None, energy_ratio=None, energy_ci=None, load=None):
    """A finished measurement as measuring.rounds returns it (unpaired unless hef is given)."""
    samples = samples or [per_call_s * f for f in (0.99, 1.0, 1.0, 1.01, 1.0, 0.995, 1.005, 1.0, 1.0, 1.0)]
    window_s = per_call_s * calls if window_s is None else window_s
    reading = EnergyReading(window_j, window_s, source)
    side = Side(samples=samples, round_medians=samples)
    return RoundsMeasurement(side, None, 10, summarize(samples), hef, hef_ci, energy_ci, reading, calls, window_s,
                             load, [], window_s, 0.0, energy_ratio)


def _info(peaks=None):
    return DeviceInfo("cpu", "test cpu", "cpu", 2**34, peaks or {})


def test_reference_row_identities_exactly():
    m = _measurement(1e-3, calls=2000, window_j=50.0)      # 2 s window, 50 J: 25 W, 25 mJ per call
    row = ok_row(REF, _case(REF), m, CPU, _info({"fp32": Peak(1e9, "test", "theoretical")}), 1e-7, None, {}, {})
    C = REF.logical_flops
    assert row.time_s_median == pytest.approx(1e-3)
    assert row.logical_flops_per_s * row.time_s_median == pytest.approx(C, rel=1e-12)
    assert row.energy_j == pytest.approx(50.0 / 2000, rel=1e-12)
    assert row.logical_flops_per_j * row.energy_j == pytest.approx(C, rel=1e-12)
    assert row.power_w * m.window_s == pytest.approx(50.0, rel=1e-12)
    assert row.power_w == pytest.approx(25.0, rel=1e-12)
    assert row.mfu == pytest.approx(row.physical_flops_per_s / 1e9, rel=1e-12)
    assert row.hef_time == 1.0 and row.hef_energy == 1.0
    assert row.doublings_time == 0.0 and row.doublings_energy == 0.0
    assert row.arithmetic_intensity == pytest.approx(C / (3 * 64 * 64 * 4))
    assert row.repeats == 10 and row.batch == 10 and row.window_s == m.window_s


def test_hef_is_reference_time_over_time_and_doublings_have_the_sign_of_log2():
    ref = ok_row(REF, _case(REF), _measurement(2e-3, window_j=10.0), CPU, _info(), 0.0, None, {}, {})
    fast = ok_row(BF16, _case(BF16), _measurement(5e-4, window_j=1.0), CPU, _info(), 0.0, ref, {}, {})
    slow = ok_row(BF16, _case(BF16), _measurement(8e-3, window_j=40.0), CPU, _info(), 0.0, ref, {}, {})
    assert fast.hef_time == pytest.approx(ref.time_s_median / fast.time_s_median, rel=1e-12) == pytest.approx(4.0)
    assert fast.hef_energy == pytest.approx(ref.energy_j / fast.energy_j, rel=1e-12)
    assert fast.doublings_time == pytest.approx(2.0) and fast.doublings_time > 0
    assert slow.hef_time == pytest.approx(0.25) and slow.doublings_time == pytest.approx(-2.0)
    assert slow.doublings_energy == pytest.approx(math.log2(slow.hef_energy)) and slow.doublings_energy < 0


def test_energy_per_call_uses_the_calls_of_the_same_window():
    m = _measurement(1e-3, calls=500, window_s=0.5, window_j=7.0)
    row = ok_row(REF, _case(REF), m, CPU, _info(), 0.0, None, {}, {})
    assert row.energy_j == pytest.approx(7.0 / 500, rel=1e-12)


def test_physical_rate_uses_physical_flops_and_logical_rate_the_logical_count():
    spec = MatmulSpec((64, 64, 64), "fp32", SparsitySpec("unstructured", 0.1))
    case = _case(spec, physical=spec.logical_flops // 10, density=0.1)
    row = ok_row(spec, case, _measurement(1e-4), CPU, _info(), 0.0, None, {}, {})
    assert row.physical_flops_per_s * row.time_s_median == pytest.approx(spec.logical_flops // 10, rel=1e-12)
    assert row.logical_flops_per_s / row.physical_flops_per_s == pytest.approx(10.0, rel=1e-3)
    assert row.density == 0.1 and row.backend == "csr"


def test_mfu_of_a_sparse_row_is_the_work_done_over_the_peak():
    spec = MatmulSpec((64, 64, 64), "fp32", SparsitySpec("unstructured", 0.1))
    case = _case(spec, physical=spec.logical_flops // 10, density=0.1)
    peak = 2 * spec.logical_flops / 1e-4 / 10                  # logical rate would be 5x the peak
    row = ok_row(spec, case, _measurement(1e-4), CPU, _info({"fp32": Peak(peak, "p", "datasheet")}), 0.0,
                 None, {}, {})
    assert row.logical_flops_per_s > peak and row.mfu == pytest.approx(0.5, rel=1e-2) and row.mfu <= 1


def test_no_hef_without_an_ok_reference_and_no_rates_without_energy():
    row = ok_row(BF16, _case(BF16), _measurement(1e-3, window_j=None, source="none"), CPU, _info(), 0.0,
                 None, {}, {})
    assert row.hef_time is None and row.doublings_time is None
    assert row.energy_j is None and row.logical_flops_per_j is None and row.energy_source == "none"
    failed_ref = base_row(REF, CPU, "error", "boom")
    assert with_hef(row, BF16, failed_ref).hef_time is None


def test_estimate_energy_is_flagged_and_labelled():
    row = ok_row(REF, _case(REF), _measurement(1e-3, window_j=3.0, source="estimate"), CPU, _info(), 0.0,
                 None, {}, {})
    assert row.energy_source == "estimate" and "estimate" in row.flags.split(",")


def test_throttle_flag_from_sensor_snapshots():
    row = ok_row(REF, _case(REF), _measurement(1e-3), CPU, _info(), 0.0, None,
                 {"clock_mhz": 2000.0, "temp_c": 50.0}, {"clock_mhz": 1500.0, "temp_c": 52.0})
    assert "throttled" in row.flags and row.clock_mhz_start == 2000.0 and row.clock_mhz_end == 1500.0


def test_paired_rounds_give_hef_and_its_interval():
    ref = ok_row(REF, _case(REF), _measurement(2e-3, window_j=10.0), CPU, _info(), 0.0, None, {}, {})
    m = _measurement(5e-4, window_j=1.0, hef=3.9, hef_ci=(3.7, 4.2), energy_ratio=9.5, energy_ci=(9.0, 10.0))
    row = ok_row(BF16, _case(BF16), m, CPU, _info(), 0.0, ref, {}, {})
    assert row.hef_time == 3.9 and (row.hef_time_ci_low, row.hef_time_ci_high) == (3.7, 4.2)
    assert row.doublings_time == pytest.approx(math.log2(3.9))
    assert row.hef_energy == 9.5 and (row.hef_energy_ci_low, row.hef_energy_ci_high) == (9.0, 10.0)
    assert row.doublings_energy == pytest.approx(math.log2(9.5)) and row.rounds == 10
    failed_ref = base_row(REF, CPU, "error", "boom")            # no ok reference: no hef even if paired
    assert ok_row(BF16, _case(BF16), m, CPU, _info(), 0.0, failed_ref, {}, {}).hef_time is None


def test_contention_columns_and_flags_come_from_the_window_load():
    busy = WindowLoad(1.0, other_cores=0.9, steal_frac=0.0, own_cores=1.0, threads=2)
    row = ok_row(REF, _case(REF), _measurement(1e-3, load=busy), CPU, _info(), 0.0, None, {}, {})
    assert row.cpu_other_cores == 0.9 and row.cpu_steal_frac == 0.0 and "contended" in row.flags
    quiet = WindowLoad(1.0, other_cores=0.01, steal_frac=0.0, own_cores=1.98, threads=2)
    row = ok_row(REF, _case(REF), _measurement(1e-3, load=quiet), CPU, _info(), 0.0, None, {}, {})
    assert "contended" not in row.flags and "stalled" not in row.flags


def test_base_row_density_for_both_kernels():
    assert base_row(MatmulSpec((8, 8, 8), "fp32", SparsitySpec("block", 0.25, 4)), CPU, "unsupported").density == 0.25
    att = AttentionSpec((1, 1, 4, 4, 8), "fp32", "causal", "flash")
    assert base_row(att, CPU, "unsupported").density == pytest.approx(10 / 16)


def test_failure_reason_is_one_line_and_names_memory():
    assert failure_reason(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert failure_reason(MemoryError()).startswith("out of memory")
    assert failure_reason(RuntimeError("CUDA out of memory. Tried")).startswith("out of memory")
    assert failure_reason(ValueError()) == "ValueError"


times = st.floats(min_value=1e-7, max_value=10.0, allow_nan=False)
joules = st.floats(min_value=1e-6, max_value=1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(t_ref=times, t=times, j_ref=joules, j=joules, calls=st.integers(1, 10**6), calls_ref=st.integers(1, 10**6),
       peak=st.floats(min_value=1e6, max_value=1e16))
def test_identities_hold_for_any_measurement(t_ref, t, j_ref, j, calls, calls_ref, peak):
    info = _info({"bf16": Peak(peak, "p", "datasheet"), "fp32": Peak(peak, "p", "datasheet")})
    m_ref = _measurement(t_ref, calls=calls_ref, window_s=1.5, window_j=j_ref)
    m = _measurement(t, calls=calls, window_s=2.5, window_j=j)
    ref = ok_row(REF, _case(REF), m_ref, CPU, info, 0.0, None, {}, {})
    row = ok_row(BF16, _case(BF16), m, CPU, info, 0.0, ref, {}, {})
    C = BF16.logical_flops
    assert math.isclose(row.logical_flops_per_s * row.time_s_median, C, rel_tol=1e-9)
    assert math.isclose(row.logical_flops_per_j * row.energy_j, C, rel_tol=1e-9)
    assert math.isclose(row.energy_j * calls, j, rel_tol=1e-9)
    assert math.isclose(row.power_w * 2.5, j, rel_tol=1e-9)
    assert math.isclose(row.hef_time, ref.time_s_median / row.time_s_median, rel_tol=1e-9)
    assert math.isclose(row.hef_energy, ref.energy_j / row.energy_j, rel_tol=1e-9)
    assert math.isclose(row.doublings_time, math.log2(row.hef_time), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(row.doublings_energy, math.log2(row.hef_energy), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(row.mfu, row.physical_flops_per_s / peak, rel_tol=1e-9)


def test_every_column_of_a_full_row():
    """A golden row: each field traced to its input, so a column computed from the wrong input shows."""
    spec = MatmulSpec((64, 64, 64), "bf16", SparsitySpec("unstructured", 0.5))
    case = _case(spec, physical=spec.logical_flops // 2, bytes_moved=1000, density=0.5)
    case.extras["pruning_error"] = 0.25
    case.flags = ("upcast-fp32",)
    load = WindowLoad(1.0, other_cores=0.5, steal_frac=0.1, own_cores=0.2, threads=2)
    m = _measurement(1e-3, calls=100, window_s=2.0, window_j=4.0, source="estimate", load=load)
    peak = Peak(1e12, "sheet", "datasheet")
    row = ok_row(spec, case, m, CPU, _info({"bf16": peak}), 0.125, None,
                 {"clock_mhz": 3000.0, "temp_c": 40.0}, {"clock_mhz": 2000.0, "temp_c": 45.0})
    d = row.as_dict()
    assert d["flags"] == "upcast-fp32,contended,stalled,throttled,estimate"
    assert (d["peak_flops_per_s"], d["peak_source"]) == (1e12, "sheet")
    assert (d["rel_error"], d["pruning_error"], d["bytes_moved"]) == (0.125, 0.25, 1000)
    assert (d["clock_mhz_start"], d["clock_mhz_end"], d["temp_c_start"], d["temp_c_end"]) == (3000.0, 2000.0, 40.0, 45.0)
    assert (d["cpu_other_cores"], d["cpu_steal_frac"]) == (0.5, 0.1)
    assert d["arithmetic_intensity"] == spec.logical_flops / 1000 and d["density"] == 0.5
    assert d["energy_j"] == pytest.approx(4.0 / 100) and d["energy_source"] == "estimate"
    gpu = ok_row(spec, case, m, __import__("torch").device("cuda", 0), _info({"bf16": peak}), 0.0, None, {}, {})
    assert "stalled" not in gpu.flags and "contended" in gpu.flags and gpu.device == "cuda:0"
    nopeak = ok_row(spec, case, m, CPU, _info(), 0.0, None, {}, {})
    assert nopeak.peak_flops_per_s is None and nopeak.peak_source == "" and nopeak.mfu is None
    unmeasured = ok_row(spec, case, _measurement(1e-3, source="estimate"), CPU, _info(), 0.0, None, {}, {})
    assert "estimate" not in unmeasured.flags.split(",")          # no joules, nothing estimated
    dup = ok_row(spec, _case(spec), _measurement(1e-3, load=load), CPU, _info(), 0.0, None, {}, {})
    dup_flags = dup.flags.split(",")
    assert len(dup_flags) == len(set(dup_flags))
    bare = base_row(spec, CPU, "unsupported")
    assert bare.reason == "" and bare.status == "unsupported"


def test_roof_columns_place_the_work_done_under_the_measured_roofline():
    from hwprof.measuring.stream import MemoryRoof
    from hwprof.running.roofs import ComputeRoof, Roofs
    mem = MemoryRoof(1e9, "triad", 1e9, 1e9, 2**26, 10, "test")
    roofs = Roofs("fp", {}, "2026-11-24", mem, {"fp32": ComputeRoof("fp32", 4e9, "x")})
    m = _measurement(1e-3)
    dense = ok_row(REF, _case(REF), m, CPU, _info(), 0.0, None, {}, {}, roofs)
    intensity = REF.logical_flops / (3 * 64 * 64 * 4)                    # 10.7 FLOP/B: compute-bound here
    assert dense.roof_flops_per_s == min(4e9, 1e9 * intensity) == 4e9
    assert dense.roof_frac == pytest.approx(dense.physical_flops_per_s / 4e9, rel=1e-12)
    sparse = MatmulSpec((64, 64, 64), "fp32", SparsitySpec("unstructured", 0.05))
    row = ok_row(sparse, _case(sparse, physical=REF.logical_flops // 20), m, CPU, _info(), 0.0, None, {}, {}, roofs)
    phys_intensity = (REF.logical_flops // 20) / (3 * 64 * 64 * 4)      # 0.53 FLOP/B: memory-bound
    assert row.roof_flops_per_s == pytest.approx(1e9 * phys_intensity, rel=1e-12)
    assert row.roof_frac == pytest.approx(row.physical_flops_per_s / row.roof_flops_per_s, rel=1e-12)
    widened = ok_row(BF16, _case(BF16), m, CPU, _info(), 0.0, None, {}, {}, roofs)   # bf16 roof not measured:
    assert widened.roof_flops_per_s == 4e9                                   # held to fp32's, where it is exact
    fp64 = MatmulSpec((64, 64, 64), "fp64", SparsitySpec("dense", 1.0))
    no_roof = ok_row(fp64, _case(fp64), m, CPU, _info(), 0.0, None, {}, {}, roofs)   # nothing wider measured
    assert no_roof.roof_flops_per_s == pytest.approx(1e9 * intensity)        # the memory roof alone
    plain = ok_row(REF, _case(REF), m, CPU, _info(), 0.0, None, {}, {})
    assert plain.roof_flops_per_s is None and plain.roof_frac is None
    mover = ok_row(REF, _case(REF, physical=0, bytes_moved=10**6), m, CPU, _info(), 0.0, None, {}, {}, roofs)
    assert mover.roof_flops_per_s is None and mover.roof_frac == pytest.approx(1e6 / 1e-3 / 1e9)   # its bandwidth
    hollow = ok_row(REF, _case(REF, physical=0, bytes_moved=0), m, CPU, _info(), 0.0, None, {}, {}, roofs)
    assert hollow.roof_frac is None                  # no arithmetic and no bytes (a hollow step): nothing to place


def test_a_reference_row_has_the_interval_one_to_one_by_definition():
    m = _measurement(1e-3, window_j=2.0)
    row = ok_row(REF, _case(REF), m, CPU, _info(), 0.0, None, {}, {})
    assert (row.hef_time_ci_low, row.hef_time_ci_high) == (1.0, 1.0)
    assert (row.hef_energy_ci_low, row.hef_energy_ci_high) == (1.0, 1.0)
    no_energy = ok_row(REF, _case(REF), _measurement(1e-3, window_j=None, source="none"), CPU, _info(), 0.0, None,
                       {}, {})
    assert (no_energy.hef_time_ci_low, no_energy.hef_time_ci_high) == (1.0, 1.0)
    assert no_energy.hef_energy_ci_low is None and no_energy.hef_energy_ci_high is None
    failed = with_hef(base_row(REF, CPU, "error", "boom"), REF, None)
    assert failed.hef_time_ci_low is None and failed.hef_time is None


def test_an_out_of_memory_without_words_still_says_what_it_was():
    assert failure_reason(torch.OutOfMemoryError()) == "out of memory: OutOfMemoryError"
    assert failure_reason(MemoryError("no room")) == "out of memory: no room"


def test_implementation_flags_say_when_a_fallback_or_an_fp32_gemm_computed_the_row(monkeypatch):
    from hwprof.kernels.spec import MatmulSpec, SparsitySpec
    from hwprof.measuring.impl import Impl, Kernel
    from hwprof.running import rows
    monkeypatch.setattr(rows, "blas_library", lambda: "mkl")
    cpu = torch.device("cpu")
    fp8 = MatmulSpec((512, 512, 512), "fp8_e4m3")
    xeon = Impl((Kernel("onednn", "ref:any", True),), ("aten::_scaled_mm",))
    assert rows.implementation_flags(fp8, cpu, xeon) == ["reference-impl"]                # the Xeon's fp8
    zen = Impl((Kernel("mkl", "SGEMM"),), ("aten::_scaled_mm",))
    assert rows.implementation_flags(fp8, cpu, zen) == ["upcast-fp32"]                    # Zen 5: widened to fp32
    fp16 = MatmulSpec((512, 512, 512), "fp16")
    assert rows.implementation_flags(fp16, cpu, Impl((), ("aten::mm",))) == ["reference-impl"]   # no BLAS at all
    assert rows.implementation_flags(fp16, cpu, Impl((), ("aten::mm",), logged=False)) == []     # logs unreadable
    csr = MatmulSpec((512, 512, 512), "fp32", SparsitySpec.parse("unstructured:0.1"))
    assert rows.implementation_flags(csr, cpu, Impl((), ("aten::mm",))) == []             # sparse: no BLAS expected
    bf16 = MatmulSpec((512, 512, 512), "bf16")
    assert rows.implementation_flags(bf16, cpu, Impl((Kernel("onednn", "brg_matmul:avx10_1_512_amx"),))) == []
    monkeypatch.setattr(rows, "blas_library", lambda: "open")                             # OpenBLAS logs no calls
    assert rows.implementation_flags(fp16, cpu, Impl((), ("aten::mm",))) == []
