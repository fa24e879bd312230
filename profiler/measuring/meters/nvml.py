"""NVIDIA GPU energy through NVML (the `pynvml` module of nvidia-ml-py).

First choice is the total-energy counter (Volta and newer, millijoules since driver load); where it
is missing, or a window reads zero, a thread samples board power every ~10 ms and integrates it
(trapezoids). Both measure the board of the GPU the kernel ran on, idle draw included.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from hwprof.measuring.meters.base import EnergyMeter, MeterUnavailable
from hwprof.measuring.nvml import nvml_error as _nvml_error


class NvmlSampledMeter(EnergyMeter):
    source = "nvml-sampled"
    min_window_s = 2.0        # the driver's power reading is itself averaged (~100 ms on recent boards)

    def __init__(self, nvml: Any, handle: Any, interval_s: float = 0.01) -> None:
        super().__init__()
        self.nvml, self.handle, self.interval_s = nvml, handle, interval_s
        self._samples: list[tuple[float, float]] = []
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self.read_watts()   # fail now, at selection, rather than inside a measurement

    def read_watts(self) -> float:
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        except Exception as e:
            raise MeterUnavailable(f"NVML power reading failed ({_nvml_error(e)})") from None

    def _poll(self) -> None:
        while not self._stop_evt.wait(self.interval_s):
            try:
                self._samples.append((time.perf_counter(), self.read_watts()))
            except MeterUnavailable:
                return

    def _start(self) -> None:
        self._samples = [(time.perf_counter(), self.read_watts())]
        self._stop_evt.clear()
        self._thread = threading.Thread(target=self._poll, name="hwprof-nvml-power", daemon=True)
        self._thread.start()

    def _stop(self, window_s):
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._samples.append((time.perf_counter(), self.read_watts()))
        return integrate(self._samples), self.source, False

    def describe(self) -> str:
        return f"nvml-sampled: board power polled every {self.interval_s * 1e3:g} ms and integrated"


def integrate(samples: list[tuple[float, float]]) -> float:
    """Trapezoidal integral of (time s, power W) samples, in joules."""
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(samples, samples[1:]))


class NvmlMeter(EnergyMeter):
    """Counter first; falls back to sampling if the counter is missing or a window reads zero."""
    min_window_s = 1.0

    def __init__(self, nvml: Any, handle: Any) -> None:
        super().__init__()
        self.nvml, self.handle = nvml, handle
        self.fallback_reason: str | None = None
        self._sampler: NvmlSampledMeter | None = None
        try:
            self._read_mj()
        except Exception as e:
            self._switch(f"energy counter unavailable ({_nvml_error(e)})")
        self._e0 = 0

    @property
    def source(self) -> str:   # type: ignore[override]
        return "nvml-sampled" if self._sampler else "nvml-counter"

    def _read_mj(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def _switch(self, reason: str) -> None:
        self.fallback_reason = reason
        self._sampler = NvmlSampledMeter(self.nvml, self.handle)
        self.min_window_s = self._sampler.min_window_s

    def _start(self) -> None:
        if self._sampler:
            self._sampler._start()
        else:
            self._e0 = self._read_mj()

    def _stop(self, window_s):
        if self._sampler:
            return self._sampler._stop(window_s)
        delta = self._read_mj() - self._e0
        if delta <= 0:
            self._switch("energy counter read zero over a window")
            return None, "nvml-counter", True
        return delta * 1e-3, "nvml-counter", False

    def describe(self) -> str:
        if self._sampler:
            return f"{self._sampler.describe()} ({self.fallback_reason})"
        return "nvml-counter: nvmlDeviceGetTotalEnergyConsumption (board energy, mJ)"
