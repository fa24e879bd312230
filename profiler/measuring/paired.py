"""One configuration measured in paired rounds against an optional reference, back to back (peer checks,
tests and simple callers; the runner interleaves whole families: measuring.rounds.Family)."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Callable

from hwprof.measuring.arm import Context, RoundsMeasurement, prepare_arm
from hwprof.measuring.contention import LoadProbe
from hwprof.measuring.measure import Policy
from hwprof.measuring.meters.base import EnergyMeter
from hwprof.measuring.rounds import Family
from hwprof.measuring.timing import Timer


def measure_rounds(fn: Callable[[], object], timer: Timer, meter: EnergyMeter, policy: Policy,
                   ref_fn: Callable[[], object] | None = None, probe: LoadProbe | None = None,
                   context: Context = nullcontext, ref_context: Context = nullcontext,
                   ref_batch: int | None = None) -> RoundsMeasurement:
    """Measure fn in rounds back to back, alternating with ref_fn when given. Stops when the interval over
    rounds (of hef when paired, of the time otherwise) is within the CI target, at least `rounds` rounds are
    done, or the budget is spent. A failure of either callable propagates."""
    arm = prepare_arm(fn, timer, policy, context)
    ref = prepare_arm(ref_fn, timer, policy, ref_context, ref_batch) if ref_fn is not None else None
    family = Family([arm], ref, timer, meter, policy, probe)
    while not family.done:
        family.round()
    for a in (arm, ref):
        if a is not None and a.error is not None:
            raise a.error
    family.finish([arm])
    return replace(family.measurement(arm), sampled_s=family.sampled_s)   # the reference's windows were its too
