"""Peak FLOP/s per device and precision: a shipped GPU datasheet table and a theoretical CPU figure."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from hwprof.compat import tomllib


@dataclass(frozen=True)
class Peak:
    flops_per_s: float
    source: str
    kind: str            # "datasheet" | "theoretical"


@dataclass(frozen=True)
class GpuEntry:
    name: str
    names: tuple[str, ...]           # exact device names (as NVML/torch report them)
    source: str
    tdp_w: float
    mem_bw_bytes_per_s: float
    sms: int                         # SMs of the full GPU (a MIG slice has fewer)
    tflops: dict[str, float]
    year: int = 0                    # first shipped


@functools.lru_cache(maxsize=1)
def gpu_table() -> tuple[GpuEntry, ...]:
    text = resources.files("hwprof").joinpath("data/gpu_peaks.toml").read_text()
    return tuple(GpuEntry(g["name"], tuple(g["names"]), g["source"], float(g["tdp_w"]),
                          float(g["mem_bw_gbs"]) * 1e9, int(g["sms"]), dict(g["tflops"]), int(g["year"]))
                 for g in tomllib.loads(text)["gpu"])


_MIG = re.compile(r"\s+MIG\s+\S+$", re.IGNORECASE)        # "NVIDIA A100-SXM4-40GB MIG 1g.5gb"


def normalize_gpu_name(name: str) -> str:
    """Case, spacing, hyphens/underscores and the spelling of memory sizes ("80 GB", "80G") normalised."""
    n = name.lower().replace("-", " ").replace("_", " ")
    n = re.sub(r"\b(\d+)\s*g(?:b|ib)?\b", r"\1gb", n)
    n = " ".join(n.split())
    return n[len("nvidia "):] if n.startswith("nvidia ") else n


def split_mig(device_name: str) -> tuple[str, bool]:
    """(the parent GPU's name, whether this is a MIG slice)."""
    base = _MIG.sub("", device_name.strip())
    return base, base != device_name.strip()


def match_gpu(device_name: str) -> GpuEntry | None:
    """The table entry whose name equals the device's (after normalising); None when unknown."""
    key = normalize_gpu_name(split_mig(device_name)[0])
    for entry in gpu_table():
        if any(normalize_gpu_name(n) == key for n in entry.names):
            return entry
    return None


def gpu_peaks(device_name: str, sm_count: int | None = None) -> dict[str, Peak]:
    """Datasheet peaks; for a MIG slice, scaled by its share of the GPU's SMs (sm_count from torch)."""
    entry = match_gpu(device_name)
    if entry is None:
        return {}
    _, mig = split_mig(device_name)
    share = 1.0
    note = ""
    if mig:
        if not sm_count:
            return {}                 # a slice of unknown size: no peak rather than the whole GPU's
        share = min(1.0, sm_count / entry.sms)
        note = f"; MIG slice: {sm_count} of {entry.sms} SMs"
    return {p: Peak(t * 1e12 * share, f"{entry.name}: {entry.source}{note}", "datasheet")
            for p, t in entry.tflops.items()}


# FLOP per cycle per core for FP32 FMA pipes: 2 FMA units x lanes x 2 FLOP.
def cpu_flops_per_cycle(flags: set[str], vendor: str) -> dict[str, int]:
    """Per-core FLOP/cycle by precision from ISA flags; precisions without a native path are left out."""
    if "avx512f" in flags and "intel" in vendor.lower():
        fp32 = 2 * 16 * 2
    elif "avx2" in flags and "fma" in flags:
        fp32 = 2 * 8 * 2     # also AMD Zen 4, whose AVX-512 runs on 256-bit pipes
    elif "avx" in flags:
        fp32 = 8 * 2         # separate add and multiply ports, no FMA
    else:
        fp32 = 4 * 2
    out = {"fp32": fp32, "fp64": fp32 // 2}
    if "amx_bf16" in flags:
        out["bf16"] = 1024
    elif "avx512_bf16" in flags:
        out["bf16"] = 2 * fp32
    if "amx_fp16" in flags:
        out["fp16"] = 1024
    elif "avx512_fp16" in flags:
        out["fp16"] = 2 * fp32
    if "amx_int8" in flags:
        out["int8"] = 2048
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        out["int8"] = 4 * fp32
    return out


def cpu_peaks(flags: set[str], vendor: str, cores: int, ghz: float) -> dict[str, Peak]:
    if cores <= 0 or ghz <= 0:
        return {}
    return {p: Peak(cores * ghz * 1e9 * f, f"theoretical: {cores} cores x {ghz:.2f} GHz x {f} FLOP/cycle "
                                            f"({p}, from ISA flags)", "theoretical")
            for p, f in cpu_flops_per_cycle(flags, vendor).items()}
