"""NVML access in one place: the library is initialised once per process, and a torch CUDA device is
mapped to its NVML handle by UUID (NVML's own index order is not CUDA's).

Everything that reads an NVIDIA GPU (energy meters, clocks and temperatures, driver facts) goes through
`open_device`; failures raise MeterUnavailable with the reason in words.
"""
from __future__ import annotations

import threading
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


def handle_for(nvml: Any, index: int, uuid: str | None = None) -> Any:
    """The NVML handle of the GPU torch calls cuda:index (by UUID, which survives CUDA_VISIBLE_DEVICES)."""
    if uuid:
        u = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        try:
            return nvml.nvmlDeviceGetHandleByUUID(u)
        except Exception:
            pass
    try:
        return nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception as e:
        raise MeterUnavailable(f"NVML: no handle for GPU {index} ({nvml_error(e)})") from None


def open_device(device) -> tuple[Any, Any]:
    """(pynvml, handle) for a torch CUDA device, matched by UUID; MeterUnavailable with the reason if not."""
    nvml = load_nvml()
    uuid = None
    try:
        import torch
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except Exception:
        pass
    return nvml, handle_for(nvml, device.index or 0, uuid)
