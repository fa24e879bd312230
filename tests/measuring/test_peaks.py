import pytest

from hwprof.measuring.peaks import (clock_lower_bound, cpu_flops_per_cycle, cpu_peaks, gpu_peaks, gpu_table, match_gpu, normalize_gpu_name,
                                    split_mig)


# Names as NVML (nvmlDeviceGetName) and torch.cuda.get_device_name report them on real machines.
NVML_NAMES = {
    "NVIDIA H100 80GB HBM3": "H100 SXM", "NVIDIA H100 PCIe": "H100 PCIe", "NVIDIA H100 NVL": "H100 NVL",
    "NVIDIA H200": "H200 SXM", "NVIDIA H200 NVL": "H200 NVL", "NVIDIA GH200 480GB": "GH200 (96 GB HBM3)",
    "NVIDIA GH200 144G HBM3e": "GH200 (144 GB HBM3e)",
    "NVIDIA A100-SXM4-80GB": "A100 SXM4 80GB", "NVIDIA A100-SXM4-40GB": "A100 SXM4 40GB",
    "NVIDIA A100-PCIE-40GB": "A100 PCIe 40GB", "NVIDIA A100 80GB PCIe": "A100 PCIe 80GB",
    "NVIDIA L4": "L4", "NVIDIA L40S": "L40S", "NVIDIA L40": "L40", "NVIDIA GeForce RTX 4090": "GeForce RTX 4090",
    "Tesla T4": "T4", "Tesla V100-SXM2-16GB": "V100 SXM2", "Tesla V100-SXM2-32GB": "V100 SXM2",
}


@pytest.mark.parametrize("name,entry", sorted(NVML_NAMES.items()))
def test_device_names_match_exactly_their_entry(name, entry):
    assert match_gpu(name).name == entry
    assert match_gpu(name.upper().replace(" ", "  ")).name == entry        # case and spacing normalised


def test_every_table_entry_is_reached_by_a_real_name():
    assert {e.name for e in gpu_table()} == set(NVML_NAMES.values())


def test_near_misses_never_get_a_neighbours_row():
    assert match_gpu("NVIDIA L40S").name != "L4" and match_gpu("NVIDIA L40").name != "L4"
    assert gpu_peaks("NVIDIA L40S")["bf16"].flops_per_s == pytest.approx(362.05e12)     # not the L4's 121
    assert gpu_peaks("NVIDIA H100 NVL")["bf16"].flops_per_s == pytest.approx(835.5e12)  # not the SXM's 989
    assert match_gpu("NVIDIA GH200 480GB").name.startswith("GH200")                     # not "H200"
    a100_40 = match_gpu("NVIDIA A100-PCIE-40GB")
    assert a100_40.mem_bw_bytes_per_s == 1555e9 and a100_40.tdp_w == 250                # not the 80 GB card's
    for unknown in ("NVIDIA H100", "NVIDIA L4S", "NVIDIA A100", "Tesla T4S", "Tesla V100-PCIE-16GB", "NVIDIA GeForce GTX 1080",
                    "NVIDIA H100 94GB HBM3"):
        assert match_gpu(unknown) is None, unknown


def test_memory_size_spellings_are_normalised():
    assert normalize_gpu_name("NVIDIA A100-SXM4-80GB") == normalize_gpu_name("nvidia a100 sxm4 80 GB")
    assert normalize_gpu_name("NVIDIA GH200 144G HBM3e") == "gh200 144gb hbm3e"


def test_mig_slice_peaks_scale_by_sm_share_or_are_withheld():
    name = "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    assert split_mig(name) == ("NVIDIA A100-SXM4-40GB", True)
    assert match_gpu(name).name == "A100 SXM4 40GB"
    full = gpu_peaks("NVIDIA A100-SXM4-40GB")["bf16"].flops_per_s
    slice_ = gpu_peaks(name, sm_count=14)["bf16"]
    assert slice_.flops_per_s == pytest.approx(full * 14 / 108) and "14 of 108 SMs" in slice_.source
    assert gpu_peaks(name) == {}            # SM count unknown: no peak rather than the whole GPU's


def test_unknown_gpu_gets_no_peak():
    assert match_gpu("NVIDIA GeForce GTX 1080") is None and gpu_peaks("Tesla P100-PCIE-16GB") == {}


def test_every_entry_has_a_release_year_and_a_power_limit():
    for e in gpu_table():
        assert 2016 <= e.year <= 2026 and e.tdp_w > 0, e.name
    assert match_gpu("Tesla V100-SXM2-32GB").year == 2017 and match_gpu("NVIDIA H100 80GB HBM3").year == 2022


def test_peaks_are_dense_and_sourced():
    h100 = gpu_peaks("NVIDIA H100 80GB HBM3")
    assert h100["bf16"].flops_per_s == pytest.approx(989.4e12)      # not the 1979 sparse figure
    assert h100["fp8_e4m3"].flops_per_s == pytest.approx(1978.9e12)
    for e in gpu_table():
        assert e.source and e.tdp_w > 0 and e.mem_bw_bytes_per_s > 0
        sixteen = e.tflops.get("bf16", e.tflops.get("fp16"))         # pre-Ampere parts have fp16 only
        assert sixteen >= e.tflops["fp32"]
        assert "fp8_e4m3" not in e.tflops or e.tflops["fp8_e4m3"] == pytest.approx(2 * e.tflops["bf16"], rel=0.03)
    assert "fp8_e4m3" not in match_gpu("NVIDIA A100-SXM4-80GB").tflops


# The flags /proc/cpuinfo shows on the CPUs this project met (the ones that matter here)
XEON_AMX = {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_int8",
            "amx_tile"}                                      # Intel Xeon, family 6 model 143/207 (SPR/EMR)
ZEN = {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"}


def flops(table):
    return {p: c.flops for p, c in table.items()}


def test_cpu_flops_per_cycle_from_flags_and_the_core_generation():
    avx2 = flops(cpu_flops_per_cycle({"avx2", "fma"}, "AuthenticAMD"))
    assert avx2 == {"fp32": 32, "fp64": 16, "bf16": 32, "fp16": 32, "int8": 64, "fp8_e4m3": 32}
    xeon = cpu_flops_per_cycle(XEON_AMX, "GenuineIntel", "cpu family 6 model 143 stepping 8")
    assert flops(xeon) == {"fp32": 64, "fp64": 32, "bf16": 1024, "fp16": 128, "int8": 2048, "fp8_e4m3": 1024}
    assert "AMX" in xeon["bf16"].path and "AVX512-FP16" in xeon["fp16"].path and "no fp8" in xeon["fp8_e4m3"].path
    zen4 = flops(cpu_flops_per_cycle(ZEN, "AuthenticAMD", "cpu family 25 model 17 stepping 1"))
    zen5 = flops(cpu_flops_per_cycle(ZEN, "AuthenticAMD", "cpu family 26 model 2 stepping 1"))
    assert zen4["fp32"] == 32 and zen5["fp32"] == 64          # 256-bit pipes against 512-bit ones
    assert zen5["bf16"] == 128 and zen5["int8"] == 256 and zen5["fp16"] == 64   # no AVX512-FP16: fp32's


def test_cpu_peak_needs_a_clock_and_names_its_path_and_clock():
    table = cpu_flops_per_cycle({"avx2", "fma"}, "x")
    assert cpu_peaks(table, cores=2, ghz=0.0, clock_source="none") == {}
    p = cpu_peaks(table, cores=2, ghz=3.0, clock_source="cpufreq maximum")["fp32"]
    assert p.flops_per_s == 2 * 3e9 * 32 and p.kind == "theoretical"
    assert "cpufreq maximum" in p.source and "AVX2 FMA" in p.source


def test_the_clock_is_the_slowest_at_which_the_cores_reach_every_measured_rate():
    table = cpu_flops_per_cycle(ZEN, "AuthenticAMD", "cpu family 26 model 2 stepping 1")
    # the Zen 5 roofs: fp32 218.6 GFLOP/s (MKL's AVX2 path), bf16 944.6, int8 1946.2 GOP/s, on 2 cores
    ghz, precision = clock_lower_bound({"fp32": 218.6e9, "bf16": 944.6e9, "int8": 1946.2e9}, table, 2)
    assert precision == "int8" and ghz == pytest.approx(1946.2e9 / (2 * 256 * 1e9))
    peaks = cpu_peaks(table, 2, ghz, "bound")
    assert all(peaks[p].flops_per_s >= r * (1 - 1e-12)
               for p, r in {"fp32": 218.6e9, "bf16": 944.6e9, "int8": 1946.2e9}.items())
    assert clock_lower_bound({}, table, 2) is None and clock_lower_bound({"tf32": 1e12}, table, 2) is None