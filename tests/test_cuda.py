"""CUDA paths: run with `python -m pytest -m cuda` on a machine with an NVIDIA GPU (skipped elsewhere)."""
import pytest
import torch

from hwprof import kernels
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec
from hwprof.measuring.measure import Policy, measure
from hwprof.measuring.meters import select_meter
from hwprof.measuring.meters.base import NoMeter
from hwprof.measuring.timing import CudaTimer
from tests.conftest import requires_cuda

pytestmark = [pytest.mark.cuda, requires_cuda]


@pytest.fixture
def dev():
    return torch.device("cuda", 0)


def test_cuda_timer_measures_device_time_not_launch_time(dev):
    cycles = 10_000_000                      # a few ms of device spinning, whatever the clock
    timer = CudaTimer(dev)
    one = timer.time_batch(lambda: torch.cuda._sleep(cycles), 1)
    four = timer.time_batch(lambda: torch.cuda._sleep(cycles), 4)
    assert one > 0 and four == pytest.approx(4 * one, rel=0.2)


def test_l2_flush_buffer_exceeds_l2(dev):
    timer = CudaTimer(dev, flush_l2=True)
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    assert timer._flush_buf.numel() * 4 >= 2 * l2 - 4


@pytest.mark.parametrize("precision,max_err", [("fp64", 1e-12), ("fp32", 1e-5), ("tf32", 5e-3), ("fp16", 5e-3),
                                               ("bf16", 2e-2), ("fp8_e4m3", 0.1), ("int8", 0.05)])
def test_each_precision_on_cuda(dev, precision, max_err):
    spec = MatmulSpec((1024, 1024, 1024), precision)
    try:
        case, out = kernels.build_case(spec, dev)
    except kernels.Unsupported as e:
        assert precision == "fp8_e4m3" and "sm_89" in str(e)
        return
    before = torch.backends.cuda.matmul.allow_tf32
    assert 0 <= case.rel_error(out) < max_err
    with case.context():
        if precision == "tf32":
            assert torch.backends.cuda.matmul.allow_tf32
        if precision == "fp32":
            assert not torch.backends.cuda.matmul.allow_tf32       # IEEE fp32 really is IEEE
    assert torch.backends.cuda.matmul.allow_tf32 == before           # restored


def test_tf32_is_faster_than_ieee_fp32(dev):
    results = {}
    for p in ("fp32", "tf32"):
        case, _ = kernels.build_case(MatmulSpec((4096, 4096, 4096), p), dev)
        with case.context():
            results[p] = measure(case.run, CudaTimer(dev), NoMeter(), Policy(budget_s=0.5, min_window_s=0.2)).summary.median
    assert results["tf32"] < results["fp32"]


@pytest.mark.parametrize("precision,max_err", [("fp16", 2e-2), ("bf16", 2e-2), ("int8", 5e-2)])
def test_2_4_runs_on_sm80_plus(dev, precision, max_err):
    if torch.cuda.get_device_capability(dev) < (8, 0):
        pytest.skip("needs sm_80")
    spec = MatmulSpec((4096, 4096, 4096), precision, SparsitySpec.parse("2:4"))
    try:
        case, out = kernels.build_case(spec, dev)
    except kernels.Unsupported as e:           # torch's semi-structured int8 kernels vary by version
        assert precision == "int8" and "torch" in str(e)
        return
    assert case.physical_flops == spec.logical_flops // 2
    assert case.rel_error(out) < max_err        # against the fp64 product of the *pruned* operands


@pytest.mark.parametrize("backend", ["flash", "efficient", "cudnn", "math"])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_attention_backends_bf16(dev, backend, pass_):
    spec = AttentionSpec((1, 8, 1024, 1024, 128), "bf16", "causal", backend, pass_)
    try:
        case, out = kernels.build_case(spec, dev)
    except kernels.Unsupported as e:
        assert "torch cannot run" in str(e)          # torch's own reason is kept
        return
    assert case.rel_error(out) < 3e-2


def test_fp32_flash_is_unsupported_with_torchs_reason(dev):
    with pytest.raises(kernels.Unsupported, match="flash"):
        kernels.build_case(AttentionSpec((1, 2, 128, 128, 64), "fp32", "none", "flash"), dev)


def test_nvml_meter_measures_a_real_window(dev):
    meter, notes = select_meter(dev, "auto")
    if meter.source == "none":
        pytest.skip(f"no NVML here: {notes}")
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    meter.start()
    for _ in range(200):
        a @ a
    torch.cuda.synchronize(dev)
    r = meter.stop()
    if r.retry:
        meter.start()
        for _ in range(200):
            a @ a
        torch.cuda.synchronize(dev)
        r = meter.stop()
    assert r.energy_j > 0 and 10 < r.energy_j / r.window_s < 2000     # watts a board can draw


def test_monitor_reads_clocks_and_temperature(dev):
    from hwprof.measuring.devices import Monitor
    snap = Monitor(dev).snapshot()
    if not snap:
        pytest.skip("no NVML here")
    assert snap["clock_mhz"] > 0 and snap["temp_c"] > 0


def test_tiny_suite_end_to_end_on_cuda(tmp_path, tiny_suite):
    import hwprof
    df = hwprof.run_suite(str(tiny_suite), device="cuda", out_dir=tmp_path, idle_s=1.0, device_warmup_s=0.5)
    assert (df["device"] == "cuda:0").all()
    assert df.set_index("config_id").loc["matmul/64x64x64/tf32/dense/fwd", "status"] == "ok"
    ok = df[df["status"] == "ok"]
    assert ok["energy_source"].isin(["nvml-counter", "nvml-sampled", "none"]).all()
