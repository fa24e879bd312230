import pytest

from hwprof.measuring.peaks import cpu_flops_per_cycle, cpu_peaks, gpu_peaks, gpu_table, match_gpu


@pytest.mark.parametrize("name,entry", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA H200 NVL", "H200 NVL"), ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
    ("NVIDIA A100-SXM4-40GB", "A100 SXM4 40GB"), ("NVIDIA A100 80GB PCIe", "A100 PCIe"), ("NVIDIA L4", "L4"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
])
def test_device_names_match_table_entries(name, entry):
    assert match_gpu(name).name == entry


def test_unknown_gpu_gets_no_peak():
    assert match_gpu("NVIDIA GeForce GTX 1080") is None and gpu_peaks("Tesla T4") == {}


def test_peaks_are_dense_and_sourced():
    h100 = gpu_peaks("NVIDIA H100 80GB HBM3")
    assert h100["bf16"].flops_per_s == pytest.approx(989.4e12)      # not the 1979 sparse figure
    assert h100["fp8_e4m3"].flops_per_s == pytest.approx(1978.9e12)
    for e in gpu_table():
        assert e.source and e.tdp_w > 0 and e.mem_bw_bytes_per_s > 0
        assert e.tflops["bf16"] >= e.tflops["fp32"]
        assert "fp8_e4m3" not in e.tflops or e.tflops["fp8_e4m3"] == pytest.approx(2 * e.tflops["bf16"], rel=0.01)
    assert "fp8_e4m3" not in match_gpu("NVIDIA A100-SXM4-80GB").tflops


def test_cpu_flops_per_cycle_from_flags():
    assert cpu_flops_per_cycle({"avx2", "fma"}, "AuthenticAMD") == {"fp32": 32, "fp64": 16}
    intel = cpu_flops_per_cycle({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"}, "GenuineIntel")
    assert intel["fp32"] == 64 and intel["bf16"] == 128 and intel["int8"] == 256
    assert cpu_flops_per_cycle({"avx2", "fma", "avx512f"}, "AuthenticAMD")["fp32"] == 32   # Zen 4: 256-bit pipes
    assert cpu_flops_per_cycle({"amx_bf16", "amx_int8", "avx512f"}, "GenuineIntel")["int8"] == 2048


def test_cpu_peak_needs_a_clock():
    assert cpu_peaks({"avx2", "fma"}, "x", cores=2, ghz=0.0) == {}
    p = cpu_peaks({"avx2", "fma"}, "x", cores=2, ghz=3.0)["fp32"]
    assert p.flops_per_s == 2 * 3e9 * 32 and p.kind == "theoretical" and "theoretical" in p.source
