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


def test_handle_by_uuid_with_the_right_prefix_and_never_by_index():
    """Source: NVML docs - nvmlDeviceGetHandleByIndex's order "may not correlate with other APIs" (CUDA's);
    MIG instances are looked up as "MIG-<uuid>", GPUs as "GPU-<uuid>"."""
    fake = FakeNvml()
    assert handle_for(fake, 0, "GPU-abc").handle == ("uuid", "GPU-abc")
    assert handle_for(fake, 0, "abc").handle == ("uuid", "GPU-abc")
    mig = handle_for(fake, 0, "abc", mig=True)
    assert mig.handle == ("uuid", "MIG-abc") and mig.matched_by == "mig-uuid" and mig.mig
    with pytest.raises(MeterUnavailable, match="not guessing by index"):
        handle_for(fake, 3, None)


def test_uuid_failure_falls_back_to_pci_bus_id_not_index():
    class NoUuid(FakeNvml):
        def nvmlDeviceGetHandleByUUID(self, uuid):
            raise NVMLError("Not Found")

        def nvmlDeviceGetHandleByPciBusId_v2(self, bus):
            return ("pci", bus)
    t = handle_for(NoUuid(), 1, "abc", "00000000:3B:00.0")
    assert t.handle == ("pci", "00000000:3B:00.0") and t.matched_by == "pci-bus-id"
    with pytest.raises(MeterUnavailable, match="Not Found"):
        handle_for(NoUuid(), 1, "abc", None)


def test_a_mig_slice_gets_no_energy_meter_with_the_reason():
    from hwprof.measuring.nvml import NvmlTarget
    meter, notes = select_meter(torch.device("cuda", 0), "auto", nvml=(FakeNvml(), NvmlTarget(("uuid", "MIG-x"), "mig-uuid", True)))
    assert meter.source == "none" and "MIG" in notes[0] and "shared" in notes[0]


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
    from hwprof.measuring.nvml import NvmlTarget
    meter, notes = select_meter(torch.device("cuda", 0), "auto",
                                nvml=(FakeNvml(counter=False), NvmlTarget(("uuid", "GPU-x"), "uuid", False)))
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


class _Field:
    def __init__(self, mw, ret=0, value_type=1):
        self.nvmlReturn, self.valueType = ret, value_type
        self.value = types.SimpleNamespace(uiVal=int(mw), siVal=int(mw), dVal=float(mw))


class InstantNvml(FakeNvml):
    """A board whose averaged reading lags: PowerUsage says 100 W, the instant field 400 W."""
    def __init__(self, **kw):
        super().__init__(counter=False, power_w=100.0, **kw)
        self.instant_w = 400.0

    def nvmlDeviceGetFieldValues(self, handle, fields):
        assert fields == [186]                      # NVML_FI_DEV_POWER_INSTANT
        return [_Field(self.instant_w * 1000)]


def test_sampler_reads_instantaneous_power_where_offered():
    """Source: NVML docs - on Ampere (except GA100) and newer nvmlDeviceGetPowerUsage is a 1 s average;
    Zeus reads NVML_FI_DEV_POWER_INSTANT instead."""
    import time
    meter = NvmlSampledMeter(InstantNvml(), ("h",), interval_s=0.005)
    assert meter.instant and "INSTANT" in meter.describe()
    meter.start()
    time.sleep(0.1)
    r = meter.stop()
    meter.close()
    assert r.energy_j == pytest.approx(400.0 * r.window_s, rel=0.05)


def test_sampler_without_the_field_says_it_integrates_an_average():
    meter = NvmlSampledMeter(FakeNvml(counter=False), ("h",))
    assert not meter.instant and "1 s average" in meter.describe()
    meter.close()


def test_sampling_starts_before_the_window_and_integrates_exactly_its_bounds():
    from hwprof.measuring.meters.nvml import integrate_between
    samples = [(0.0, 100.0), (1.0, 300.0), (2.0, 300.0)]
    assert integrate_between(samples, 0.5, 1.5) == pytest.approx((200 + 300) / 2 * 0.5 + 300 * 0.5)


def test_counter_windows_are_at_least_five_seconds():
    """The counter updates every ~20-100 ms: a 1 s window carries up to ~10% read-out error."""
    meter = NvmlMeter(FakeNvml(), ("index", 0))
    assert meter.min_window_s >= 5.0


def test_throttle_flag_comes_from_nvml_clock_event_reasons():
    from hwprof.measuring.devices import Sensors, throttled

    class Reasons(FakeNvml):
        NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 2, 0
        reasons = 0x1

        def nvmlDeviceGetClockInfo(self, h, which):
            return 1980

        def nvmlDeviceGetTemperature(self, h, which):
            return 60

        def nvmlDeviceGetCurrentClocksEventReasons(self, h):
            return self.reasons

    fake = Reasons()
    sensors = Sensors(torch.device("cuda", 0), nvml=(fake, ("h",)))
    idle = sensors.snapshot()
    fake.reasons = 0x20                                   # SW thermal slowdown
    hot = sensors.snapshot()
    assert idle["clock_event_reasons"] == 1.0
    assert not throttled(idle, idle) and throttled(idle, hot)
    fake.reasons = 0x10 | 0x2                             # sync boost, application clocks: not throttling
    assert not throttled(idle, sensors.snapshot())
