"""What hwprof sees on this machine: every device with its description and the energy meter it would use."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hwprof.measuring.devices import DeviceInfo, describe
from hwprof.measuring.meters import select_meter


@dataclass
class DeviceSurvey:
    device: torch.device
    info: DeviceInfo
    meter: str                                         # the meter's own one-line description
    skipped_meters: list[str] = field(default_factory=list)   # why better meters were not used


def survey(cpu_tdp_watts: float | None = None) -> list[DeviceSurvey]:
    """The CPU and every CUDA device torch sees."""
    devices = [torch.device("cpu")] + [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    out = []
    for dev in devices:
        info = describe(dev)
        meter, notes = select_meter(dev, "auto", cpu_tdp_watts)
        out.append(DeviceSurvey(dev, info, meter.describe(), notes))
        meter.close()
    return out
