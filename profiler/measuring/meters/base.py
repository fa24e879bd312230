"""The energy-meter interface: start a window, stop it, get joules for that window."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass


class MeterUnavailable(Exception):
    """This meter cannot run here; the message says why (shown by `hwprof devices` and in run.json)."""


class MeterError(Exception):
    """A meter that was working stopped answering during a measurement."""


@dataclass(frozen=True)
class EnergyReading:
    energy_j: float | None       # None: nothing measured in this window
    window_s: float
    source: str
    retry: bool = False          # the meter changed mode (e.g. counter read zero): measure another window


class EnergyMeter(ABC):
    source: str = "none"
    min_window_s: float = 0.0    # shorter windows are below the meter's resolution (flag short-window)
    resolution_s: float = 0.0    # how often the reading changes: short windows may be summed only if small

    def __init__(self) -> None:
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()
        try:
            self._start()
        except Exception as e:
            self._t0 = None
            raise MeterError(f"energy meter {self.source} stopped answering: {e}") from e

    def stop(self) -> EnergyReading:
        if self._t0 is None:
            raise RuntimeError("meter stopped before it was started")
        window = time.perf_counter() - self._t0
        self._t0 = None
        try:
            energy, source, retry = self._stop(window)
        except Exception as e:
            raise MeterError(f"energy meter {self.source} stopped answering: {e}") from e
        return EnergyReading(energy, window, source, retry)

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _stop(self, window_s: float) -> tuple[float | None, str, bool]:
        """Joules for the window (None if nothing was measured), the source, and whether to retry."""

    @abstractmethod
    def describe(self) -> str:
        """One line for people: what is measured and how."""

    def close(self) -> None:
        pass


class NoMeter(EnergyMeter):
    source = "none"

    def __init__(self, why: str = "no energy meter selected") -> None:
        super().__init__()
        self.why = why

    def _start(self) -> None:
        pass

    def _stop(self, window_s):
        return None, "none", False

    def describe(self) -> str:
        return f"none ({self.why})"
