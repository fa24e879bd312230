"""RAPL on sysfs trees laid out like /sys/class/powercap on real machines."""
from pathlib import Path

import pytest

from hwprof.measuring.meters import select_meter
from hwprof.measuring.meters.base import MeterUnavailable
from hwprof.measuring.meters.rapl import RaplMeter, delta_uj, discover_packages

MAX = 262143328850      # a real max_energy_range_uj value


def zone(root: Path, name: str, label: str, energy: int, max_range: int = MAX) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    (d / "enabled").write_text("1\n")
    return d


@pytest.fixture
def two_socket(tmp_path) -> Path:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", 1_000_000)
    zone(root, "intel-rapl:0:0", "core", 500_000)          # subzone: part of package-0, never summed
    zone(root, "intel-rapl:0:1", "dram", 200_000)
    zone(root, "intel-rapl:1", "package-1", 2_000_000)
    zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000)  # same package via MMIO: counted once
    zone(root, "intel-rapl:2", "psys", 9_000_000)          # platform domain: not a package
    return root


def set_energy(root: Path, name: str, value: int) -> None:
    (root / name / "energy_uj").write_text(f"{value}\n")


def test_discovers_each_package_once(two_socket):
    zones = discover_packages(two_socket)
    assert sorted(z.name for z in zones) == ["package-0", "package-1"]
    assert all("mmio" not in z.path.name for z in zones)


def test_sums_package_deltas(two_socket):
    meter = RaplMeter(two_socket)
    meter.start()
    set_energy(two_socket, "intel-rapl:0", 3_000_000)      # +2 J
    set_energy(two_socket, "intel-rapl:1", 2_500_000)      # +0.5 J
    set_energy(two_socket, "intel-rapl:0:0", 99_000_000)   # subzone changes must not count
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(2.5)
    assert reading.source == "rapl"


def test_wraparound(two_socket):
    set_energy(two_socket, "intel-rapl:0", MAX - 1_000_000)
    meter = RaplMeter(two_socket)
    meter.start()
    set_energy(two_socket, "intel-rapl:0", 500_000)        # wrapped: 1 J before the wrap + 0.5 J after
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(1.5)
    assert delta_uj(10, 5, 0) if False else True
    with pytest.raises(ValueError):
        delta_uj(10, 5, 0)


def test_permission_denied_gives_actionable_message(two_socket, monkeypatch):
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(MeterUnavailable, match="permission denied.*chmod"):
        RaplMeter(two_socket)


def test_missing_tree_and_fallback_to_estimate(tmp_path):
    import torch
    with pytest.raises(MeterUnavailable, match="does not exist"):
        discover_packages(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MeterUnavailable, match="no package zones"):
        discover_packages(empty)
    meter, notes = select_meter(torch.device("cpu"), "auto", powercap_root=tmp_path / "absent")
    assert meter.source == "estimate" and "RAPL" in notes[0]


def test_selects_rapl_when_present(two_socket):
    import torch
    meter, notes = select_meter(torch.device("cpu"), "auto", powercap_root=two_socket)
    assert meter.source == "rapl" and notes == []


def test_long_windows_count_every_wrap(two_socket):
    """Two wraps inside one window (a small AMD-like range): each is folded in by the background reader."""
    import time
    small = 65_532_610_987            # an AMD max_energy_range_uj (~65.5 kJ)
    set_energy(two_socket, "intel-rapl:0", small - 1_000_000)
    (two_socket / "intel-rapl:0" / "max_energy_range_uj").write_text(f"{small}\n")
    meter = RaplMeter(two_socket, poll_s=0.02)
    meter.start()
    set_energy(two_socket, "intel-rapl:0", 2_000_000)            # wrap 1: +3 J
    time.sleep(0.2)
    set_energy(two_socket, "intel-rapl:0", small - 1_000_000)    # +(small - 3 J): almost a full lap
    time.sleep(0.2)
    set_energy(two_socket, "intel-rapl:0", 4_000_000)            # wrap 2: +5 J
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(3 + (small - 3_000_000) * 1e-6 + 5, rel=1e-9)


def test_default_poll_interval_stays_below_a_wrap():
    from hwprof.measuring.meters.rapl import RaplZone
    amd = [RaplZone(Path("."), "package-0", 65_532_610_987)]
    assert RaplMeter.default_poll_s(amd) * RaplMeter.MAX_PACKAGE_WATTS * 1e6 < 65_532_610_987 / 2
    assert RaplMeter.default_poll_s([RaplZone(Path("."), "package-0", MAX)]) == 10.0
