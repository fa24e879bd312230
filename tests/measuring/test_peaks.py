import pytest

from hwprof.measuring.peaks import (cpu_flops_per_cycle, cpu_peaks, gpu_peaks, gpu_table, match_gpu, normalize_gpu_name,
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
