"""Energy meters behind one interface, chosen per device with graceful fallbacks.

CUDA: NVML counter -> NVML power sampling -> none.  CPU: RAPL -> estimate (labelled) -> none.
Every fallback leaves a one-line reason, shown by `hwprof devices` and stored in run.json.
"""
from __future__ import annotations

from pathlib import Path

from hwprof.errors import BadInput
from hwprof.measuring.meters.base import EnergyMeter, EnergyReading, MeterUnavailable, NoMeter
from hwprof.measuring.meters.estimate import EstimateMeter
from hwprof.measuring.meters.nvml import NvmlMeter
from hwprof.measuring.meters.rapl import POWERCAP_ROOT, RaplMeter
from hwprof.measuring.nvml import open_device

ENERGY_CHOICES = ("auto", "nvml", "rapl", "estimate", "none")

__all__ = ["ENERGY_CHOICES", "EnergyMeter", "EnergyReading", "MeterUnavailable", "NoMeter", "select_meter"]


def select_meter(device, choice: str = "auto", cpu_tdp_watts: float | None = None,
                 powercap_root: Path = POWERCAP_ROOT, nvml=None) -> tuple[EnergyMeter, list[str]]:
    """Return the best meter for `device` (a torch.device) and the reasons earlier choices were skipped.
    `nvml` = (pynvml module, NvmlTarget) replaces the real library (tests)."""
    if choice not in ENERGY_CHOICES:
        raise BadInput(f"energy meter {choice!r}: use one of {', '.join(ENERGY_CHOICES)}")
    notes: list[str] = []
    if device.type == "cuda" and choice in ("rapl", "estimate"):
        # CPU-package joules are not the GPU's: never label them as a CUDA row's energy
        raise BadInput(f"energy meter {choice!r} measures the CPU package, not the GPU {device} runs on; "
                       "use nvml, auto or none for a CUDA device")
    if device.type == "cuda":
        order = ["nvml"] if choice in ("auto", "nvml") else [choice]
    else:
        order = ["rapl", "estimate"] if choice == "auto" else [choice]
    for kind in order:
        if kind == "none":
            return NoMeter("energy measurement turned off"), notes
        try:
            if kind == "nvml":
                if device.type != "cuda":
                    raise MeterUnavailable("NVML measures NVIDIA GPUs; the device is a CPU")
                lib, target = nvml if nvml is not None else open_device(device)
                if target.mig:
                    raise MeterUnavailable("NVML: a MIG slice has no energy counter or power reading of its own; "
                                           "the board's are shared with the other slices, so no per-slice energy")
                meter = NvmlMeter(lib, target.handle)
                if meter.fallback_reason:
                    notes.append(f"nvml-counter: {meter.fallback_reason}")
                return meter, notes
            if kind == "rapl":
                return RaplMeter(powercap_root), notes
            if kind == "estimate":
                if device.type == "cuda":
                    raise MeterUnavailable("the estimate meter models CPU power only")
                return EstimateMeter(cpu_tdp_watts), notes
        except MeterUnavailable as e:
            notes.append(str(e))
    return NoMeter("; ".join(notes) or "no meter available"), notes
