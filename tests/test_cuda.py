"""CUDA paths on real hardware: `python -m pytest -m cuda` on a machine with an NVIDIA GPU (skipped elsewhere).

These tests fail on a wrong number, not only on a crash: a kernel that must run on this architecture and
comes back Unsupported fails, and bounds are tight enough to catch a 2-3x error."""
import time

import pytest
import torch

from hwprof import kernels
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec
from hwprof.measuring.measure import Policy, measure
from hwprof.measuring.meters import select_meter
from hwprof.measuring.meters.base import NoMeter
from hwprof.measuring.peaks import gpu_peaks
from hwprof.measuring.timing import CudaTimer
from tests.conftest import requires_cuda

pytestmark = [pytest.mark.cuda, requires_cuda]


@pytest.fixture
def dev():
    return torch.device("cuda", 0)


def _cap(dev):
    return torch.cuda.get_device_capability(dev)


def test_cuda_timer_measures_device_time_not_launch_time(dev):
    cycles = 10_000_000                      # a few ms of device spinning, whatever the clock
    timer = CudaTimer(dev)
    one = timer.time_batch(lambda: torch.cuda._sleep(cycles), 1)
    four = timer.time_batch(lambda: torch.cuda._sleep(cycles), 4)
    assert one > 1e-4 and four == pytest.approx(4 * one, rel=0.1)


def test_timer_on_the_last_gpu_measures_its_work(dev):
    """Item: events recorded on the measured device's stream (cuda:N, N > 0)."""
    last = torch.device("cuda", torch.cuda.device_count() - 1)
    if last.index == 0:
        pytest.skip("one GPU: cuda:N, N > 0 needs two")
    a = torch.randn(4096, 4096, device=last)
    t = CudaTimer(last).time_batch(lambda: a @ a, 10)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize(last)
    wall = time.perf_counter() - t0
    assert t == pytest.approx(wall, rel=0.3)          # device time of the work, not launch time


def test_l2_flush_is_per_call_and_makes_small_kernels_slower(dev):
    """Item: flush before every call (do_bench). A 1 MiB operand fits in L2; cold it is read from HBM."""
    x = torch.randn(256 * 1024, device=dev)
    warm = measure(lambda: x.sum(), CudaTimer(dev), NoMeter(), Policy(budget_s=0.5, min_window_s=0.3)).summary.median
    cold = measure(lambda: x.sum(), CudaTimer(dev, flush_l2=True), NoMeter(),
                   Policy(budget_s=0.5, min_window_s=0.3)).summary.median
    assert cold > warm
    timer = CudaTimer(dev, flush_l2=True)
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    assert timer._flush_buf.numel() * 4 >= 2 * l2 - 4


@pytest.mark.parametrize("precision,max_err", [("fp64", 1e-12), ("fp32", 1e-5), ("tf32", 3e-3), ("fp16", 2e-3),
                                               ("bf16", 1e-2), ("fp8_e4m3", 0.08), ("int8", 0.03)])
def test_each_precision_runs_where_the_architecture_has_it(dev, precision, max_err):
    spec = MatmulSpec((1024, 1024, 1024), precision)
    try:
        case, out = kernels.build_case(spec, dev)
    except kernels.Unsupported as e:
        assert precision == "fp8_e4m3" and _cap(dev) < (8, 9), str(e)      # anything else must run
        return
    err = case.rel_error(out)
    assert 0 <= err < max_err
    if precision == "tf32":
        assert err > 1e-5                    # really TF32 (10-bit mantissa), not IEEE fp32
    if precision == "fp32":
        assert err < 1e-5                    # really IEEE fp32


def test_dense_int8_runs_with_b_column_major_and_beats_bf16_at_large_shapes(dev):
    """Item: cuBLASLt int8 wants TN; with it, int8 tensor cores are at least as fast as bf16's."""
    rates = {}
    for p in ("bf16", "int8"):
        case, _ = kernels.build_case(MatmulSpec((8192, 8192, 8192), p), dev)
        if p == "int8":
            assert case.operands["b"].stride() == (1, 8192)
        m = measure(case.run, CudaTimer(dev), NoMeter(), Policy(budget_s=1.0, min_window_s=0.5))
        rates[p] = case.logical_flops / m.summary.median
    assert rates["int8"] > 0.9 * rates["bf16"]


def test_bf16_4096_reaches_a_plausible_share_of_the_datasheet_peak(dev):
    peak = gpu_peaks(torch.cuda.get_device_name(dev)).get("bf16")
    if peak is None:
        pytest.skip("GPU not in the peak table")
    case, _ = kernels.build_case(MatmulSpec((4096, 4096, 4096), "bf16"), dev)
    m = measure(case.run, CudaTimer(dev), NoMeter(), Policy(budget_s=1.0, min_window_s=0.5))
    mfu = case.logical_flops / m.summary.median / peak.flops_per_s
    assert 0.3 < mfu <= 1.0


def test_tf32_is_faster_than_ieee_fp32(dev):
    results = {}
    for p in ("fp32", "tf32"):
        case, _ = kernels.build_case(MatmulSpec((4096, 4096, 4096), p), dev)
        with case.context():
            results[p] = measure(case.run, CudaTimer(dev), NoMeter(), Policy(budget_s=0.5, min_window_s=0.2)).summary.median
    assert results["tf32"] < 0.7 * results["fp32"]


@pytest.mark.parametrize("precision,max_err", [("fp16", 2e-3), ("bf16", 1e-2), ("tf32", 3e-3), ("int8", 3e-2)])
def test_2_4_runs_on_sm80_plus(dev, precision, max_err):
    """Item: int8 2:4 called with B column-major and an int32 output runs (not a false unsupported)."""
    if _cap(dev) < (8, 0):
        pytest.skip("needs sm_80")
    spec = MatmulSpec((4096, 4096, 4096), precision, SparsitySpec.parse("2:4"))
    case, out = kernels.build_case(spec, dev)          # Unsupported here is a failure
    assert case.physical_flops == spec.logical_flops // 2
    assert case.rel_error(out) < max_err                # against the fp64 product of the *pruned* operands
    if precision == "int8":
        assert out.dtype == torch.int32


def test_fp32_2_4_is_unsupported_and_says_tf32(dev):
    if _cap(dev) < (8, 0):
        pytest.skip("needs sm_80")
    with pytest.raises(kernels.Unsupported, match="TF32"):
        kernels.build_case(MatmulSpec((512, 512, 512), "fp32", SparsitySpec.parse("2:4")), dev)


@pytest.mark.parametrize("backend", ["flash", "math", "efficient"])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_attention_backends_bf16_run_on_sm80_plus(dev, backend, pass_):
    if _cap(dev) < (8, 0):
        pytest.skip("flash needs sm_80")
    spec = AttentionSpec((1, 8, 1024, 1024, 128), "bf16", "causal", backend, pass_)
    case, out = kernels.build_case(spec, dev)          # must run: Unsupported fails the test
    assert case.rel_error(out) < 1e-2
    if backend == "math":
        assert case.physical_flops == case.logical_flops
    else:
        assert case.physical_flops < 0.51 * case.logical_flops + 1


def test_fp32_flash_is_unsupported_with_torchs_reason(dev):
    with pytest.raises(kernels.Unsupported, match="flash"):
        kernels.build_case(AttentionSpec((1, 2, 128, 128, 64), "fp32", "none", "flash"), dev)


def test_fp32_attention_is_ieee_whatever_the_global_switch(dev):
    from hwprof.kernels.precision import fp32_matmul_mode
    with fp32_matmul_mode(dev, tf32=True):           # a user who turned TF32 on globally
        case, out = kernels.build_case(AttentionSpec((1, 4, 512, 512, 64), "fp32", "none", "math"), dev)
    assert case.rel_error(out) < 1e-5


def _burn(dev, seconds):
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize(dev)


def test_nvml_energy_over_a_long_window_matches_power_times_time(dev):
    """Items: counter windows of >= 5 s; power within the board's range and close to the sampled reading."""
    meter, notes = select_meter(dev, "auto")
    if meter.source == "none":
        pytest.skip(f"no NVML here: {notes}")
    assert meter.min_window_s >= 5.0
    meter.start()
    _burn(dev, 6.0)
    r = meter.stop()
    if r.retry:
        meter.start()
        _burn(dev, 6.0)
        r = meter.stop()
    watts = r.energy_j / r.window_s
    from hwprof.measuring.peaks import match_gpu
    entry = match_gpu(torch.cuda.get_device_name(dev))
    tdp = entry.tdp_w if entry else 1000.0
    assert 0.3 * tdp < watts <= 1.15 * tdp          # a bf16 GEMM loop draws a large share of TDP


def test_sampled_fallback_agrees_with_the_counter(dev):
    """Item: the sampler (instant power where offered) integrates to the counter's joules within 10%."""
    from hwprof.measuring.meters.nvml import NvmlMeter, NvmlSampledMeter
    from hwprof.measuring.nvml import open_device
    nvml, target = open_device(dev)
    counter = NvmlMeter(nvml, target.handle)
    if counter.source != "nvml-counter":
        pytest.skip("no energy counter to compare with")
    sampler = NvmlSampledMeter(nvml, target.handle)
    counter.start()
    sampler.start()
    _burn(dev, 6.0)
    s = sampler.stop()
    c = counter.stop()
    sampler.close()
    assert s.energy_j == pytest.approx(c.energy_j, rel=0.10)


def test_sensors_read_clocks_temperature_and_reasons(dev):
    from hwprof.measuring.devices import Sensors
    snap = Sensors(dev).snapshot()
    if not snap:
        pytest.skip("no NVML here")
    assert snap["clock_mhz"] > 0 and snap["temp_c"] > 0 and "clock_event_reasons" in snap


def test_tiny_suite_end_to_end_on_cuda(tmp_path, tiny_suite):
    import hwprof
    df = hwprof.run_suite(str(tiny_suite), device="cuda", out_dir=tmp_path, idle_s=1.0, device_warmup_s=0.5)
    assert (df["device"] == "cuda:0").all()
    by = df.set_index("config_id")
    assert by.loc["matmul/64x64x64/tf32/dense/fwd", "status"] == "ok"
    assert by.loc["attention/1x2x32x32x16/fp32/causal/efficient/fwd", "status"] == "ok"
    ok = df[df["status"] == "ok"]
    assert ok["energy_source"].isin(["nvml-counter", "nvml-sampled", "none"]).all()


def test_the_memory_roof_runs_on_device_memory_below_the_datasheet(dev):
    from hwprof.measuring.peaks import match_gpu
    from hwprof.kernels.caches import cold_bytes
    from hwprof.measuring.stream import measure_memory_roof
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    assert cold_bytes(dev) >= 4 * l2
    before = torch.cuda.memory_allocated(dev)
    roof = measure_memory_roof(dev, cold_bytes(dev), trials=5, budget_s=1.0)
    assert "device memory" in roof.method and torch.cuda.memory_allocated(dev) == before   # arrays freed
    entry = match_gpu(torch.cuda.get_device_name(dev))
    if entry:                                  # a STREAM triad reaches 60-100% of the datasheet bandwidth
        assert 0.6 * entry.mem_bw_bytes_per_s < roof.bytes_per_s <= 1.05 * entry.mem_bw_bytes_per_s
    else:
        assert roof.bytes_per_s > 1e11


def test_the_bf16_compute_roof_is_a_plausible_share_of_the_datasheet(dev):
    from hwprof.running.roofs import sweep_compute_roof
    roof = sweep_compute_roof("bf16", dev, CudaTimer(dev), budget_s=3.0, sizes=(1024, 2048, 4096))
    peak = gpu_peaks(torch.cuda.get_device_name(dev)).get("bf16")
    assert roof.flops_per_s and roof.shape
    if peak:
        assert 0.3 * peak.flops_per_s < roof.flops_per_s <= 1.0 * peak.flops_per_s
