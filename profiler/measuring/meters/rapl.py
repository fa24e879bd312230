"""Intel/AMD RAPL package energy through the Linux powercap sysfs tree.

Layout (one directory per zone): /sys/class/powercap/intel-rapl:0/{name,energy_uj,max_energy_range_uj},
subzones as intel-rapl:0:0 (core, uncore, dram). Only top-level `package-N` zones are summed, each
package once (the MMIO interface `intel-rapl-mmio:N` repeats package-N on newer Intel parts).
Counters wrap at max_energy_range_uj.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hwprof.measuring.meters.base import EnergyMeter, MeterUnavailable

POWERCAP_ROOT = Path("/sys/class/powercap")
_ZONE = re.compile(r"^intel-rapl(-mmio)?:(\d+)$")


@dataclass(frozen=True)
class RaplZone:
    path: Path
    name: str                 # e.g. package-0
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def discover_packages(root: Path = POWERCAP_ROOT) -> list[RaplZone]:
    if not root.is_dir():
        raise MeterUnavailable(f"RAPL: {root} does not exist (no powercap driver, or not Linux)")
    zones: dict[str, RaplZone] = {}
    # intel-rapl before intel-rapl-mmio, so a package seen through both is read through the MSR interface
    for entry in sorted(root.iterdir(), key=lambda p: ("-mmio" in p.name, p.name)):
        if not _ZONE.match(entry.name):
            continue
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            continue
        if not name.startswith("package") or name in zones:
            continue
        try:
            max_range = int((entry / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            max_range = 0
        zones[name] = RaplZone(entry, name, max_range)
    if not zones:
        raise MeterUnavailable(f"RAPL: no package zones under {root}")
    for zone in zones.values():
        try:
            zone.read_uj()
        except PermissionError:
            raise MeterUnavailable(
                f"RAPL: permission denied reading {zone.path / 'energy_uj'} (root-only since CVE-2020-8694); "
                f"run `sudo chmod o+r {root}/intel-rapl:*/energy_uj` or use the estimate meter") from None
        except (OSError, ValueError) as e:
            raise MeterUnavailable(f"RAPL: cannot read {zone.path / 'energy_uj'}: {e}") from None
    return list(zones.values())


def delta_uj(start: int, end: int, max_range_uj: int) -> int:
    """Counter difference, allowing one wrap-around at max_range_uj."""
    if end >= start:
        return end - start
    if max_range_uj <= 0:
        raise ValueError("RAPL counter went backwards and max_energy_range_uj is unknown")
    return end + max_range_uj - start


class RaplMeter(EnergyMeter):
    source = "rapl"
    min_window_s = 1.0      # counters update every ~1 ms; DESIGN asks for >= 1 s windows for counters

    def __init__(self, root: Path | str = POWERCAP_ROOT) -> None:
        super().__init__()
        self.zones = discover_packages(Path(root))
        self._start_uj: list[int] = []

    def _start(self) -> None:
        self._start_uj = [z.read_uj() for z in self.zones]

    def _stop(self, window_s):
        total = sum(delta_uj(s, z.read_uj(), z.max_range_uj) for s, z in zip(self._start_uj, self.zones))
        return total * 1e-6, self.source, False

    def describe(self) -> str:
        names = ", ".join(z.name for z in self.zones)
        return f"rapl: powercap package counters ({names}) summed, CPU package energy"
