"""What CPU this is: its model and processor identity, flags, cores, clocks, and its theoretical peaks.

VMs name every EPYC generation "AMD EPYC" and expose only a base clock, so the processor identity
(family/model/stepping) and the clock's source are kept beside the name, and the clock a peak uses is never
below what the measured roofs show the cores reach (`cpu_peak_table`).
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from hwprof.measuring.peaks import Peak, clock_lower_bound, cpu_flops_per_cycle, cpu_peaks


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), the set every CPU share is taken over."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:           # no affinity API (macOS): every CPU
        return list(range(psutil.cpu_count() or 1))


@dataclass
class CpuInfo:
    model: str
    vendor: str
    flags: list[str]
    physical_cores: int
    logical_cpus: int
    usable_cpus: int
    threads: int                     # torch intra-op threads used for the run
    max_mhz: float                   # 0 when unknown (VMs often expose only the base clock)
    max_mhz_source: str = ""
    microarch: str = ""              # family/model/stepping (x86) or implementer/part (Arm): VMs often name
                                     # every generation alike ("AMD EPYC"), and a Zen 4 and a Zen 5 differ 2x
    reported_mhz: float = 0.0        # /proc/cpuinfo's "cpu MHz": on a VM the base clock, not what cores reach

    @property
    def compute_cores(self) -> int:
        """Cores whose vector units the threads can use (SMT siblings share them)."""
        return max(1, min(self.threads, self.physical_cores, self.usable_cpus))


def _cpuinfo_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def microarch(fields: dict[str, str]) -> str:
    """Pure: the processor's identity from /proc/cpuinfo fields, "" where the kernel does not say."""
    if "cpu family" in fields:
        return " ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if fields.get(k))
    arm = [f"{k.split()[-1]} {fields[k]}" for k in ("CPU implementer", "CPU part", "CPU variant") if fields.get(k)]
    return " ".join(arm)


def cpu_info(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    fields: dict[str, str] = {}
    try:
        fields = _cpuinfo_fields(cpuinfo_path.read_text())
    except OSError:
        pass
    flags = sorted(set(fields.get("flags", "").split()))
    mhz, mhz_source = max_cpu_mhz()
    return CpuInfo(
        model=fields.get("model name") or platform.processor() or platform.machine(),
        vendor=fields.get("vendor_id", ""),
        flags=flags,
        physical_cores=psutil.cpu_count(logical=False) or psutil.cpu_count() or 1,
        logical_cpus=psutil.cpu_count() or 1,
        usable_cpus=len(usable_cpus()),
        threads=torch.get_num_threads(),
        max_mhz=float(mhz),
        max_mhz_source=mhz_source,
        microarch=microarch(fields),
        reported_mhz=_float(fields.get("cpu MHz", "")),
    )


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


def max_cpu_mhz(cpufreq_max: Path = CPUFREQ_MAX) -> tuple[float, str]:
    """The maximum (boost) clock, which a theoretical peak needs. /proc/cpuinfo's 'cpu MHz' is not used:
    in VMs it is the base clock, and a peak computed from it is exceeded by real kernels."""
    try:
        return int(cpufreq_max.read_text().strip()) / 1000.0, str(cpufreq_max)
    except (OSError, ValueError):
        pass
    try:
        f = psutil.cpu_freq()
        if f and f.max:
            return float(f.max), "psutil.cpu_freq().max"
    except Exception:
        pass
    return 0.0, "unknown (no cpufreq; give the maximum clock, cpu_max_ghz)"


INTERESTING_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
                     "avx_vnni", "amx_bf16", "amx_fp16", "amx_int8", "sve", "asimd")


def cpu_peak_table(cpu: CpuInfo, rates: dict[str, float] | None = None) -> tuple[dict[str, Peak], dict]:
    """The theoretical CPU peaks and the clock they use, with its source: the user's clock when given;
    otherwise the maximum clock cpufreq reports, or /proc/cpuinfo's, raised to the slowest clock at which the
    cores could have reached the measured `rates` (precision -> FLOP/s: the roofs), so a peak never sits below
    what this machine has done. Without cpufreq, a user's clock or rates, no peak (a VM's base clock is not
    one)."""
    per_cycle = cpu_flops_per_cycle(set(cpu.flags), cpu.vendor, cpu.microarch)
    cores = cpu.compute_cores
    if cpu.max_mhz_source.startswith("given by the user"):
        ghz, source = cpu.max_mhz / 1000.0, "given by the user"
    else:
        base = cpu.max_mhz or cpu.reported_mhz
        named = "cpufreq maximum" if cpu.max_mhz else "/proc/cpuinfo"
        bound = clock_lower_bound(rates or {}, per_cycle, cores)
        if bound is None and not cpu.max_mhz:
            return {}, {"ghz": None, "source": "no cpufreq and no measured rate: no peak without cpu_max_ghz"}
        if bound is not None and bound[0] * 1000.0 > base:
            ghz = bound[0]
            source = (f"at least this fast: the measured {bound[1]} roof needs it; {named} reports "
                      f"{base / 1000.0:.2f} GHz" if base else f"at least this fast: the measured {bound[1]} roof needs it")
        else:
            ghz, source = base / 1000.0, named
    return cpu_peaks(per_cycle, cores, ghz, source), {"ghz": ghz, "source": source, "cores": cores}
