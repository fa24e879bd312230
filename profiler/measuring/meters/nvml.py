"""NVIDIA GPU energy through NVML (the `pynvml` module of nvidia-ml-py).

First choice is the total-energy counter (Volta and newer, millijoules since driver load). The counter
updates only every ~20-100 ms, so a window needs several seconds for the read-out step to stay small:
windows shorter than 5 s are flagged `short-window`.

Where the counter is missing, or a window reads zero, a thread samples board power and integrates it.
NVML documents that on Ampere (except GA100) and newer `nvmlDeviceGetPowerUsage` is a 1-second average,
and A100/H100 sample only 25 ms of every 100 ms (Yang et al., arXiv 2312.02741); integrating a 1 s average
lags the window by about half a second. So the sampler reads the instantaneous field
(NVML_FI_DEV_POWER_INSTANT, as Zeus does) where the driver offers it, runs continuously from before the
window, and integrates exactly over the window's bounds. Both measure the board of the GPU the kernel
ran on, idle draw included.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from hwprof.measuring.meters.base import EnergyMeter, MeterUnavailable
from hwprof.measuring.nvml import nvml_error as _nvml_error

NVML_FI_DEV_POWER_INSTANT = 186                      # nvml.h field id (pynvml exports it on recent versions)
_VALUE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}   # nvmlValueType_t
COUNTER_MIN_WINDOW_S = 5.0


def read_instant_mw(nvml: Any, handle: Any) -> float:
    """Instantaneous board power (mW) from the field API; raises where the driver does not offer it."""
    field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", NVML_FI_DEV_POWER_INSTANT)
    fv = nvml.nvmlDeviceGetFieldValues(handle, [field])[0]
    if getattr(fv, "nvmlReturn", 0) != 0:
        raise MeterUnavailable(f"NVML instant power field not supported (return code {fv.nvmlReturn})")
    name = _VALUE_FIELDS.get(getattr(fv, "valueType", 1), "uiVal")
    return float(getattr(fv.value, name))


def integrate(samples: list[tuple[float, float]]) -> float:
    """Trapezoidal integral of (time s, power W) samples, in joules."""
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(samples, samples[1:]))


def integrate_between(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Joules between t0 and t1, interpolating power linearly at both bounds."""
    def at(t):
        for (ta, pa), (tb, pb) in zip(samples, samples[1:]):
            if ta <= t <= tb:
                return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)
        return samples[0][1] if t < samples[0][0] else samples[-1][1]
    inside = [(t, p) for t, p in samples if t0 < t < t1]
    return integrate([(t0, at(t0)), *inside, (t1, at(t1))])


class NvmlSampledMeter(EnergyMeter):
    source = "nvml-sampled"
    min_window_s = COUNTER_MIN_WINDOW_S
    LEAD_S = 0.25                  # samples kept from before a window starts

    def __init__(self, nvml: Any, handle: Any, interval_s: float = 0.01) -> None:
        super().__init__()
        self.nvml, self.handle, self.interval_s = nvml, handle, interval_s
        try:
            read_instant_mw(nvml, handle)
            self.instant = True
        except Exception:
            self.instant = False
        self._samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._w0 = 0.0
        self.read_watts()   # fail now, at selection, rather than inside a measurement
        self.resolution_s = 0.1 if self.instant else 1.0     # a 1 s average resolves nothing shorter
        self._ensure_running()

    def read_watts(self) -> float:
        try:
            mw = read_instant_mw(self.nvml, self.handle) if self.instant else self.nvml.nvmlDeviceGetPowerUsage(self.handle)
            return float(mw) / 1000.0
        except Exception as e:
            raise MeterUnavailable(f"NVML power reading failed ({_nvml_error(e)})") from None

    def _poll(self) -> None:
        while not self._stop_evt.is_set():
            try:
                sample = (time.perf_counter(), self.read_watts())
            except MeterUnavailable as e:
                self._failure = str(e)
                return
            with self._lock:
                self._samples.append(sample)
                cutoff = sample[0] - 3600.0              # bounded memory on very long runs
                if self._samples[0][0] < cutoff:
                    self._samples = [s for s in self._samples if s[0] >= cutoff]
            self._stop_evt.wait(self.interval_s)

    def _ensure_running(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop_evt.clear()
            self._failure = None
            self._thread = threading.Thread(target=self._poll, name="hwprof-nvml-power", daemon=True)
            self._thread.start()
            time.sleep(self.LEAD_S)          # sampling starts before the window, so its start is covered

    def _start(self) -> None:
        self._ensure_running()
        self._w0 = time.perf_counter()

    def _stop(self, window_s):
        t1 = time.perf_counter()
        last = (time.perf_counter(), self.read_watts())   # raises (MeterError) if the GPU stopped answering
        if self._failure:
            raise MeterUnavailable(self._failure)
        with self._lock:
            samples = [s for s in self._samples if s[0] >= self._w0 - 1.0] + [last]
        return integrate_between(samples, self._w0, t1), self.source, False

    def close(self) -> None:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def describe(self) -> str:
        what = "instantaneous board power (NVML_FI_DEV_POWER_INSTANT)" if self.instant else \
            "board power from nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer: lags the window)"
        return f"nvml-sampled: {what} polled every {self.interval_s * 1e3:g} ms and integrated over the window"


class NvmlMeter(EnergyMeter):
    """Counter first; falls back to sampling if the counter is missing or a window reads zero."""
    min_window_s = COUNTER_MIN_WINDOW_S
    resolution_s = 0.1                 # the counter's update period (20-100 ms)

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
        self.resolution_s = self._sampler.resolution_s

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

    def close(self) -> None:
        if self._sampler:
            self._sampler.close()

    def describe(self) -> str:
        if self._sampler:
            return f"{self._sampler.describe()} ({self.fallback_reason})"
        return ("nvml-counter: nvmlDeviceGetTotalEnergyConsumption (board energy, mJ; updates every ~20-100 ms, "
                f"so windows of at least {COUNTER_MIN_WINDOW_S:g} s)")
