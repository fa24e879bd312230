import types

import pytest
import torch

from hwprof.errors import BadInput
from hwprof.measuring import devices
from hwprof.measuring import cpu as cpu_mod
from hwprof.measuring.cpu import cpu_info, max_cpu_mhz, usable_cpus
from hwprof.measuring.devices import Sensors, describe, resolve_device, throttled


def test_resolve_device_accepts_the_documented_forms_and_refuses_others():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    for bad in ("tpu", "cuda:x", "gpu", ""):
        with pytest.raises(BadInput):
            resolve_device(bad or "  x ")
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="no CUDA device"):
            resolve_device("cuda:0")


def test_cpu_info_from_a_cpuinfo_file(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
                 "flags\t\t: fpu avx avx2 fma avx512f avx512_bf16\n\nprocessor\t: 1\nmodel name\t: other\n")
    info = cpu_info(p)
    assert info.model == "AMD EPYC 9R14" and info.vendor == "AuthenticAMD"
    assert {"avx2", "fma", "avx512_bf16"} <= set(info.flags)
    assert info.usable_cpus == len(usable_cpus()) >= 1
    assert 1 <= info.compute_cores <= info.usable_cpus
    assert info.microarch == ""                       # the file gives no family: nothing invented


# The first lines of /proc/cpuinfo on two 2-vCPU KVM guests that both call themselves "AMD EPYC" (Zen 4, Zen 5),
# and on an Arm Neoverse-N1 host.
ZEN4 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
        "stepping\t: 1\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
ZEN5 = ZEN4.replace("cpu family\t: 25\nmodel\t\t: 17", "cpu family\t: 26\nmodel\t\t: 2")
ARM = ("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
       "CPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n")


@pytest.mark.parametrize("text, ident", [(ZEN4, "cpu family 25 model 17 stepping 1"),
                                         (ZEN5, "cpu family 26 model 2 stepping 1"),
                                         (ARM, "implementer 0x41 part 0xd0c variant 0x3")])
def test_the_processor_is_identified_beyond_its_model_name(tmp_path, ident, text):
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    assert cpu_info(p).microarch == ident


def test_max_clock_from_cpufreq_or_unknown(tmp_path, monkeypatch):
    f = tmp_path / "cpuinfo_max_freq"
    f.write_text("3700000\n")
    assert max_cpu_mhz(f) == (3700.0, str(f))
    monkeypatch.setattr(cpu_mod.psutil, "cpu_freq", lambda: None)
    mhz, source = max_cpu_mhz(tmp_path / "absent")
    assert mhz == 0.0 and "unknown" in source


def test_describe_cpu_with_a_given_clock_has_theoretical_peaks():
    info = describe(torch.device("cpu"), cpu_max_ghz=3.0)
    assert info.kind == "cpu" and info.total_memory_bytes > 0
    assert info.cpu.max_mhz == 3000.0
    assert info.peaks["fp32"].kind == "theoretical" and info.peaks["fp32"].flops_per_s > 0
    assert "fp32" in info.to_json()["peaks"]


def test_throttled_by_clock_drop_or_temperature_rise():
    assert not throttled({"clock_mhz": 2000}, {"clock_mhz": 1900})
    assert throttled({"clock_mhz": 2000}, {"clock_mhz": 1700})
    assert throttled({"temp_c": 60}, {"temp_c": 71})
    assert not throttled({}, {})


def test_cpu_sensors_snapshot_reads_what_psutil_offers(monkeypatch):
    monkeypatch.setattr(devices.psutil, "cpu_freq", lambda: types.SimpleNamespace(current=2400.0))
    monkeypatch.setattr(devices.psutil, "sensors_temperatures",
                        lambda: {"k10temp": [types.SimpleNamespace(current=55.0)]}, raising=False)
    assert Sensors(torch.device("cpu")).snapshot() == {"clock_mhz": 2400.0, "temp_c": 55.0}


def test_device_current_makes_the_measured_cuda_device_current(monkeypatch):
    """Source: torch.cuda.Event.record() and kernel launches use the current device's stream."""
    from hwprof.measuring.devices import device_current
    seen = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: seen.append(d) or __import__("contextlib").nullcontext())
    with device_current(torch.device("cuda", 1)):
        pass
    with device_current(torch.device("cpu")):
        pass
    assert seen == [torch.device("cuda", 1)]


def _cpu(flags, vendor, microarch, max_mhz=0.0, source="unknown (no cpufreq)", reported=2599.998, threads=2):
    from hwprof.measuring.cpu import CpuInfo
    return CpuInfo("Intel Xeon Processor", vendor, sorted(flags), 2, 2, 2, threads, max_mhz, source,
                   microarch=microarch, reported_mhz=reported)


XEON = _cpu({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_int8"},
            "GenuineIntel", "cpu family 6 model 143 stepping 8")


def test_a_vm_without_cpufreq_gets_a_peak_no_lower_than_its_measured_roofs():
    """The Xeon VM of issue 27: /proc/cpuinfo says 2599.998 MHz, there is no cpufreq, and without a clock no
    row had an MFU. The clock is the reported one, raised to what the measured roofs need."""
    from hwprof.measuring.cpu import cpu_peak_table
    assert cpu_peak_table(XEON, None) == ({}, {"ghz": None, "source": cpu_peak_table(XEON, None)[1]["source"]})
    slow_roofs = {"fp32": 150e9, "bf16": 1.12e12}                # below what 2.6 GHz allows: the clock stays
    peaks, clock = cpu_peak_table(XEON, slow_roofs)
    assert clock["ghz"] == pytest.approx(2.599998) and clock["source"] == "/proc/cpuinfo"
    assert peaks["bf16"].flops_per_s == pytest.approx(2 * 2.599998e9 * 1024) and "AMX-BF16" in peaks["bf16"].source
    fast = {"fp32": 150e9, "bf16": 1.12e12, "fp16": 800e9}       # fp16 needs 800e9 / (2 x 128) = 3.125 GHz
    peaks, clock = cpu_peak_table(XEON, fast)
    assert clock["ghz"] == pytest.approx(3.125) and "fp16 roof" in clock["source"] and "2.60 GHz" in clock["source"]
    assert all(peaks[p].flops_per_s >= r for p, r in fast.items())


def test_a_given_clock_overrides_and_cpufreq_is_still_raised_by_the_roofs():
    from hwprof.measuring.cpu import cpu_peak_table
    user = _cpu(XEON.flags, "GenuineIntel", XEON.microarch, 1800.0, "given by the user (cpu_max_ghz)")
    peaks, clock = cpu_peak_table(user, {"fp16": 800e9})
    assert clock == {"ghz": 1.8, "source": "given by the user", "cores": 2}
    freq = _cpu(XEON.flags, "GenuineIntel", XEON.microarch, 3800.0, "/sys/.../cpuinfo_max_freq")
    assert cpu_peak_table(freq, None)[1]["ghz"] == pytest.approx(3.8)
    assert cpu_peak_table(freq, {"fp16": 2e12})[1]["ghz"] == pytest.approx(2e12 / (2 * 128e9))
