"""NVML access in one place: the library is initialised once per process, and a torch CUDA device is
mapped to its NVML handle by UUID (NVML's own index order is not CUDA's).

Everything that reads an NVIDIA GPU (energy meters, clocks and temperatures, driver facts) goes through
`open_device`; failures raise MeterUnavailable with the reason in words.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from hwprof.measuring.meters.base import MeterUnavailable

_lock = threading.Lock()
_nvml: Any = None


def load_nvml() -> Any:
    """The initialised pynvml module (nvmlInit runs once per process)."""
    global _nvml
    with _lock:
        if _nvml is not None:
            return _nvml
        try:
            import pynvml
        except ImportError:
            raise MeterUnavailable("NVML: nvidia-ml-py (module pynvml) is not installed") from None
        try:
            pynvml.nvmlInit()
        except Exception as e:   # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            raise MeterUnavailable(f"NVML: cannot initialise ({nvml_error(e)}); is the NVIDIA driver installed?") from None
        _nvml = pynvml
        return _nvml


def nvml_error(e: Exception) -> str:
    return f"{type(e).__name__}: {e}".strip()


@dataclass(frozen=True)
class NvmlTarget:
    """How a torch CUDA device maps onto NVML."""
    handle: Any
    matched_by: str          # "uuid" | "mig-uuid" | "pci-bus-id"
    mig: bool                # a MIG slice: NVML's energy and power are the whole board's (shared with other slices)


def _prefixed(uuid: str, mig: bool) -> list[str]:
    """torch reports the bare UUID; NVML wants "GPU-<uuid>" for a GPU and "MIG-<uuid>" for a MIG instance."""
    if uuid.startswith(("GPU-", "MIG-")):
        return [uuid]
    return [f"MIG-{uuid}", f"GPU-{uuid}"] if mig else [f"GPU-{uuid}"]


def handle_for(nvml: Any, index: int, uuid: str | None = None, pci_bus_id: str | None = None,
               mig: bool = False) -> NvmlTarget:
    """The NVML device torch calls cuda:index: by UUID (which survives CUDA_VISIBLE_DEVICES), else by PCI
    bus id. Never by index: NVML documents its enumeration order as unrelated to CUDA's, so an index
    fallback would silently read another GPU."""
    errors = []
    for u in _prefixed(uuid, mig) if uuid else []:
        try:
            return NvmlTarget(nvml.nvmlDeviceGetHandleByUUID(u), "mig-uuid" if u.startswith("MIG-") else "uuid", mig)
        except Exception as e:
            errors.append(f"{u}: {nvml_error(e)}")
    if pci_bus_id:
        try:
            getter = getattr(nvml, "nvmlDeviceGetHandleByPciBusId_v2", None) or nvml.nvmlDeviceGetHandleByPciBusId
            return NvmlTarget(getter(pci_bus_id), "pci-bus-id", mig)
        except Exception as e:
            errors.append(f"PCI {pci_bus_id}: {nvml_error(e)}")
    raise MeterUnavailable(f"NVML: cannot match cuda:{index} to an NVML device "
                           f"({'; '.join(errors) or 'torch gave no UUID or PCI bus id'}); not guessing by index, "
                           "which NVML orders differently from CUDA")


def torch_identity(device) -> tuple[str | None, str | None, bool]:
    """(UUID, PCI bus id, is a MIG slice) of a torch CUDA device, from its properties."""
    import torch
    props = torch.cuda.get_device_properties(device)
    uuid = str(getattr(props, "uuid", "") or "") or None
    pci = None
    if getattr(props, "pci_bus_id", None) is not None:
        pci = f"{getattr(props, 'pci_domain_id', 0):08X}:{props.pci_bus_id:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
    return uuid, pci, "MIG" in str(getattr(props, "name", ""))


def open_device(device) -> tuple[Any, NvmlTarget]:
    """(pynvml, target) for a torch CUDA device; MeterUnavailable with the reason if it cannot be matched."""
    nvml = load_nvml()
    try:
        uuid, pci, mig = torch_identity(device)
    except Exception as e:
        raise MeterUnavailable(f"NVML: torch cannot describe {device} ({e})") from None
    return nvml, handle_for(nvml, device.index or 0, uuid, pci, mig)
