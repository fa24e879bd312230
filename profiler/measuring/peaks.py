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
    path: str = ""       # theoretical: the ISA path counted (e.g. "AMX-BF16 tiles")
    clock: str = ""      # theoretical: the clock used and where it comes from


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


@dataclass(frozen=True)
class CyclePath:
    """What one core can do per cycle in one precision, and through which ISA path."""
    flops: int
    path: str


def _family(microarch: str) -> int:
    m = re.search(r"cpu family (\d+)", microarch)
    return int(m.group(1)) if m else 0


def cpu_flops_per_cycle(flags: set[str], vendor: str, microarch: str = "") -> dict[str, CyclePath]:
    """Pure: per-core FLOP per cycle by precision from the ISA flags (a multiply-add is 2 FLOP).

    fp32 is FMA units x lanes x 2: Xeon Scalable AVX-512, 2 x 512-bit units (Intel optimization manual);
    AMD Zen 5 (family 26), AVX-512 on two 512-bit FMA pipes, and Zen 4 (family 25), AVX-512 on 256-bit pipes
    in two passes (AMD's software optimization guides for families 19h and 1Ah); AVX2 FMA, 2 x 256-bit. The
    low precisions: AMX-BF16 and AMX-FP16 1024 and AMX-INT8 2048 (a TDPBF16PS tile product, 16x16x32
    multiply-adds, every 16 cycles); AVX512-BF16 (VDPBF16PS) and AVX512-FP16 twice fp32; VNNI (VPDPBUSD, four
    int8 products per 32-bit lane) four times. A precision with no arithmetic of its own is counted at the
    path it is converted to (fp16 on F16C and fp8 everywhere), so that its MFU says how far it is from the
    best this core could do with those numbers."""
    if "avx512f" in flags and "amd" in vendor.lower():
        fp32 = (CyclePath(64, "Zen 5 AVX-512, two 512-bit FMA pipes") if _family(microarch) >= 26
                else CyclePath(32, "Zen 4 AVX-512 on 256-bit FMA pipes"))
    elif "avx512f" in flags:
        fp32 = CyclePath(64, "AVX-512 FMA, two 512-bit units")
    elif "avx2" in flags and "fma" in flags:
        fp32 = CyclePath(32, "AVX2 FMA, two 256-bit units")
    elif "avx" in flags:
        fp32 = CyclePath(16, "AVX, separate add and multiply")
    elif "sve" in flags:
        fp32 = CyclePath(32, "SVE FMA (two 256-bit pipes assumed)")
    elif "asimd" in flags:
        fp32 = CyclePath(16, "NEON FMA (two 128-bit pipes assumed)")
    else:
        fp32 = CyclePath(8, "SSE")
    f = fp32.flops
    out = {"fp32": fp32, "fp64": CyclePath(f // 2, fp32.path + ", fp64 at half the lanes")}
    if "amx_bf16" in flags:
        out["bf16"] = CyclePath(1024, "AMX-BF16 tiles")
    elif "avx512_bf16" in flags:
        out["bf16"] = CyclePath(2 * f, "AVX512-BF16 dot products on " + fp32.path)
    else:
        out["bf16"] = CyclePath(f, "no bf16 arithmetic: converted to fp32")
    if "amx_fp16" in flags:
        out["fp16"] = CyclePath(1024, "AMX-FP16 tiles")
    elif "avx512_fp16" in flags:
        out["fp16"] = CyclePath(2 * f, "AVX512-FP16 FMA")
    else:
        out["fp16"] = CyclePath(f, "no fp16 arithmetic: converted to fp32")
    if "amx_int8" in flags:
        out["int8"] = CyclePath(2048, "AMX-INT8 tiles")
    elif "avx512_vnni" in flags:
        out["int8"] = CyclePath(4 * f, "AVX512-VNNI dot products")
    elif "avx_vnni" in flags:
        out["int8"] = CyclePath(4 * min(f, 32), "AVX-VNNI dot products (256-bit)")
    else:
        out["int8"] = CyclePath(2 * f, "no VNNI: multiply-add sequences")
    out["fp8_e4m3"] = CyclePath(out["bf16"].flops, f"no fp8 arithmetic: the bf16 path it converts to "
                                                     f"({out['bf16'].path})")
    return out


def clock_lower_bound(rates: dict[str, float], per_cycle: dict[str, CyclePath], cores: int) -> tuple[float, str] | None:
    """Pure: the slowest clock (GHz) at which this many cores could have reached every measured rate, and the
    precision that says so; None without rates. A VM reports its base clock while its cores run faster: a
    peak from that clock can sit below what the machine has done, so the clock is never taken below this."""
    best = None
    for p, rate in rates.items():
        if p in per_cycle and rate and rate > 0 and cores > 0:
            ghz = rate / (cores * per_cycle[p].flops * 1e9)
            if best is None or ghz > best[0]:
                best = (ghz, p)
    return best


def cpu_peaks(per_cycle: dict[str, CyclePath], cores: int, ghz: float, clock_source: str) -> dict[str, Peak]:
    """Pure: cores x clock x FLOP/cycle for each precision, each labelled with the path and the clock's source."""
    if cores <= 0 or ghz <= 0:
        return {}
    clock = f"{cores} cores x {ghz:.2f} GHz ({clock_source})"
    return {p: Peak(cores * ghz * 1e9 * c.flops, f"theoretical: {clock} x {c.flops} FLOP/cycle ({p}: {c.path})",
                    "theoretical", c.path, clock)
            for p, c in per_cycle.items()}
