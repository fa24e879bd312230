"""NVML meters against a fake pynvml that fails the way the real library does. Runs without a GPU."""
import sys
import types

import pytest
import torch

from hwprof.measuring.meters import select_meter
from hwprof.measuring.meters.base import MeterError, MeterUnavailable
from hwprof.measuring.meters.nvml import NvmlMeter, NvmlSampledMeter, integrate
from hwprof.measuring.nvml import handle_for, load_nvml


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class FakeNvml:
    def __init__(self, counter=True, power_w=300.0, counter_step_mj=5000):
        self.counter, self.power_w, self.step = counter, power_w, counter_step_mj
        self.energy_mj = 1_000_000
        self.fail_power = False

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return ("uuid", uuid)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i > 0:
            raise NVMLError("Invalid Argument")
        return ("index", i)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if self.counter is False:
            raise NVMLError_NotSupported("Not Supported")
        self.energy_mj += self.step
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, h):
        if self.fail_power:
            raise NVMLError("GPU is lost")
        return int(self.power_w * 1000)


def test_counter_meter_reports_joules_between_reads():
    meter = NvmlMeter(FakeNvml(), ("index", 0))
    assert meter.source == "nvml-counter"
    meter.start()
    r = meter.stop()
    assert r.energy_j == pytest.approx(5.0) and r.source == "nvml-counter" and not r.retry


def test_missing_counter_falls_back_to_sampling():
    meter = NvmlMeter(FakeNvml(counter=False, power_w=200.0), ("index", 0))
    assert meter.source == "nvml-sampled" and "Not Supported" in meter.fallback_reason
    meter.start()
    import time
    time.sleep(0.05)
    r = meter.stop()
    assert r.source == "nvml-sampled"
    assert r.energy_j == pytest.approx(200.0 * r.window_s, rel=0.1)


def test_zero_counter_window_asks_for_a_retry_then_samples():
    fake = FakeNvml(counter_step_mj=0)
    meter = NvmlMeter(fake, ("index", 0))
    meter.start()
    r = meter.stop()
    assert r.retry and r.energy_j is None
    assert meter.source == "nvml-sampled" and "zero" in meter.fallback_reason
    meter.start()
    assert meter.stop().energy_j > 0


def test_power_failure_mid_run_is_a_meter_error():
    fake = FakeNvml(counter=False)
    meter = NvmlSampledMeter(fake, ("index", 0))
    meter.start()
    fake.fail_power = True
    with pytest.raises(MeterError, match="stopped answering"):
        meter.stop()


def test_integrate_trapezoids():
    assert integrate([(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)]) == pytest.approx(150 + 400)


def test_handle_prefers_uuid_and_falls_back_to_index():
    fake = FakeNvml()
    assert handle_for(fake, 0, "GPU-abc") == ("uuid", "GPU-abc")
    assert handle_for(fake, 0, "abc") == ("uuid", "GPU-abc")
    with pytest.raises(MeterUnavailable):
        handle_for(fake, 3, None)


def test_library_missing_or_driver_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)            # import fails
    with pytest.raises(MeterUnavailable, match="not installed"):
        load_nvml()
    broken = types.SimpleNamespace(nvmlInit=lambda: (_ for _ in ()).throw(NVMLError("Driver Not Loaded")))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    with pytest.raises(MeterUnavailable, match="Driver Not Loaded"):
        load_nvml()


def test_select_meter_for_cuda_without_nvml_falls_back_to_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    meter, notes = select_meter(torch.device("cuda", 0), "auto")
    assert meter.source == "none" and "not installed" in notes[0]
    assert "not installed" in meter.describe()


def test_select_meter_for_cuda_with_fake_nvml():
    meter, notes = select_meter(torch.device("cuda", 0), "auto", nvml=FakeNvml(counter=False))
    assert meter.source == "nvml-sampled" and "counter" in notes[0]


def test_nvml_on_a_cpu_device_is_refused_with_reason():
    meter, notes = select_meter(torch.device("cpu"), "nvml")
    assert meter.source == "none" and "CPU" in notes[0]


@pytest.mark.parametrize("choice", ["rapl", "estimate"])
def test_cpu_package_meters_are_refused_for_a_cuda_device(choice):
    """CPU-package joules labelled as a GPU row's energy would be a wrong number: bad input instead."""
    from hwprof.errors import BadInput
    with pytest.raises(BadInput, match="CPU package"):
        select_meter(torch.device("cuda", 0), choice)
