"""What hardware hwprof sees: device resolution, CPU/GPU descriptions, free memory, clocks."""
from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field

import psutil
import torch

from hwprof.errors import BadInput
from hwprof.measuring.cpu import INTERESTING_FLAGS, CpuInfo, cpu_info, cpu_peak_table
from hwprof.measuring.peaks import Peak, gpu_peaks, match_gpu

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def resolve_device(text: str | None) -> torch.device:
    text = (text or "auto").strip()
    if not _DEVICE.match(text):
        raise BadInput(f"device {text!r}: use auto, cpu, cuda or cuda:N")
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInput(f"device {text!r}: torch sees no CUDA device here (torch {torch.__version__}); use the cpu device")
        idx = int(text.split(":")[1]) if ":" in text else 0
        if idx >= torch.cuda.device_count():
            raise BadInput(f"device {text!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return torch.device("cuda", idx)
    return torch.device("cpu")


@dataclass
class DeviceInfo:
    device: str
    name: str
    kind: str                               # cpu | cuda
    total_memory_bytes: int
    peaks: dict[str, Peak] = field(default_factory=dict)
    cpu: CpuInfo | None = None
    gpu: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        if self.cpu:
            d["cpu"]["flags"] = [f for f in self.cpu.flags if f in INTERESTING_FLAGS]
        d["peaks"] = {p: asdict(v) for p, v in self.peaks.items()}
        return d


def describe(device: torch.device, cpu_max_ghz: float | None = None,
             rates: dict[str, float] | None = None) -> DeviceInfo:
    """What `device` is; `rates` (measured roofs, precision -> FLOP/s) bound a CPU's clock from below."""
    cpu = cpu_info()
    if cpu_max_ghz:
        cpu.max_mhz, cpu.max_mhz_source = cpu_max_ghz * 1000.0, "given by the user (cpu_max_ghz)"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        entry = match_gpu(props.name)
        gpu = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_bytes": props.total_memory,
            "l2_bytes": getattr(props, "L2_cache_size", None),
            "uuid": str(getattr(props, "uuid", "")),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "peak_table_entry": entry.name if entry else None,
            "tdp_w": entry.tdp_w if entry else None,
            "mem_bw_bytes_per_s": entry.mem_bw_bytes_per_s if entry else None,
        }
        gpu.update(nvml_static(device))
        return DeviceInfo(str(device), props.name, "cuda", props.total_memory,
                          gpu_peaks(props.name, props.multi_processor_count), cpu, gpu)
    peaks, _ = cpu_peak_table(cpu, rates)
    return DeviceInfo("cpu", cpu.model, "cpu", psutil.virtual_memory().total, peaks, cpu)


def nvml_static(device: torch.device) -> dict:
    """Driver version and clock limits from NVML, or why they are missing."""
    try:
        from hwprof.measuring.nvml import open_device
        nvml, target = open_device(device)
        h = target.handle
        out = {"driver": nvml.nvmlSystemGetDriverVersion(), "nvml_matched_by": target.matched_by}
        if target.mig:
            out["mig"] = "MIG slice: clocks, power and energy NVML reports are the whole board's"
        for key, clock in (("max_sm_clock_mhz", nvml.NVML_CLOCK_SM), ("max_mem_clock_mhz", nvml.NVML_CLOCK_MEM)):
            try:
                out[key] = nvml.nvmlDeviceGetMaxClockInfo(h, clock)
            except Exception:
                pass
        return out
    except Exception as e:
        return {"nvml": f"unavailable: {e}"}


def device_current(device: torch.device):
    """A context in which `device` is torch's current CUDA device (a no-op for the CPU)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


class Sensors:
    """Clock and temperature snapshots around a measurement, to flag throttling (not an energy monitor)."""

    def __init__(self, device: torch.device, nvml=None):
        self.device = device
        self._nvml = self._handle = None
        if nvml is not None:                  # (pynvml, handle), for tests
            self._nvml, self._handle = nvml
        elif device.type == "cuda":
            try:
                from hwprof.measuring.nvml import open_device
                self._nvml, target = open_device(device)
                self._handle = target.handle
            except Exception:
                self._nvml = None

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._nvml is not None:
            n, h = self._nvml, self._handle
            for key, fn in (("clock_mhz", lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
                            ("mem_clock_mhz", lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)),
                            ("temp_c", lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))):
                try:
                    out[key] = float(fn())
                except Exception:
                    pass
            reasons = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
                getattr(n, "nvmlDeviceGetCurrentClocksThrottleReasons", None)      # the pre-12.4 name
            if reasons is not None:
                try:
                    out["clock_event_reasons"] = float(int(reasons(h)))
                except Exception:
                    pass
            return out
        if self.device.type == "cpu":
            try:
                f = psutil.cpu_freq()
                if f and f.current:
                    out["clock_mhz"] = float(f.current)
            except Exception:
                pass
            temps = getattr(psutil, "sensors_temperatures", lambda: {})()
            readings = [t.current for group in (temps or {}).values() for t in group if t.current]
            if readings:
                out["temp_c"] = float(max(readings))
        return out


# nvmlClocksEventReasons bits that mean the clocks were held down: SW power cap (0x4), HW slowdown (0x8),
# SW thermal (0x20), HW thermal (0x40), HW power brake (0x80). Idle (0x1), application clocks (0x2), sync
# boost (0x10) and display clock (0x100) are not throttling.
THROTTLE_REASONS_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80


def throttled(before: dict[str, float], after: dict[str, float],
              clock_drop: float = 0.10, temp_rise_c: float = 10.0) -> bool:
    """On NVIDIA GPUs: NVML's clock-event reasons name a power or thermal slowdown at either end of the window.
    Elsewhere (no reasons): a clock drop of more than 10% or a temperature rise of 10 C across the window."""
    reasons = [int(s["clock_event_reasons"]) for s in (before, after) if "clock_event_reasons" in s]
    if reasons:
        return any(r & THROTTLE_REASONS_MASK for r in reasons)
    b, a = before.get("clock_mhz"), after.get("clock_mhz")
    if b and a and a < (1.0 - clock_drop) * b:
        return True
    tb, ta = before.get("temp_c"), after.get("temp_c")
    return bool(tb is not None and ta is not None and ta - tb >= temp_rise_c)
