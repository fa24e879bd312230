"""A case's first call, made once outside the rounds: it checks that torch can run the case, gives the
output its error is computed from, says which kernel ran (measuring.impl) and how long one call takes.

The call is timed with the run's own timer and metered, so that for a call longer than a round's window
(a window would hold that one call anyway) it is the configuration's first window: a kernel that takes
seconds a call is then measured in as few calls as its cap allows (measuring.rounds), not one more.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch

from hwprof.measuring.impl import Impl
from hwprof.measuring.trace import Trace, capture_impl
from hwprof.measuring.meters.base import EnergyMeter
from hwprof.measuring.timing import Timer


@dataclass
class ProbeResult:
    seconds: float                  # the call, by the run's timer (all work finished)
    joules: float | None            # the meter's reading over it, where there is a meter
    impl: Impl = field(default_factory=Impl)


class Prober:
    """Used as `call` by kernels.build_case: `prober(run)` calls run once and returns its output;
    `prober.result` then holds the call's time, energy and implementation."""

    def __init__(self, timer: Timer, meter: EnergyMeter, device: torch.device, trace: bool = True):
        self.timer, self.meter, self.device, self.trace = timer, meter, device, trace
        self.result: ProbeResult | None = None

    def __call__(self, run: Callable[[], object]) -> object:
        box: list = []
        metered = self.meter.source != "none"
        with (capture_impl(self.device) if self.trace else nullcontext(Trace())) as trace:
            if metered:
                self.meter.start()
            try:
                seconds = self.timer.time_batch(lambda: box.append(run()), 1)
            finally:
                reading = self.meter.stop() if metered else None
        self.result = ProbeResult(seconds, reading.energy_j if reading is not None else None, trace.impl)
        return box[0]
