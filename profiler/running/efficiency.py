"""Efficiency arithmetic (pure): rates, hidden-efficiency factors, doublings, MFU, roofs."""
from __future__ import annotations

import math

from hwprof.kernels.precision import EXACT_IN


def rate(amount: float | None, cost: float | None) -> float | None:
    """amount / cost (FLOP per second or per joule); None when either side is missing or not positive."""
    if amount is None or cost is None or cost <= 0 or not math.isfinite(cost):
        return None
    return amount / cost


def hef(efficiency: float | None, reference_efficiency: float | None) -> float | None:
    """Hidden-efficiency factor: a configuration's efficiency over its reference realisation's."""
    if efficiency is None or reference_efficiency is None or reference_efficiency <= 0:
        return None
    return efficiency / reference_efficiency


def doublings(factor: float | None) -> float | None:
    if factor is None or factor <= 0:
        return None
    return math.log2(factor)


def mfu(achieved_flops_per_s: float | None, peak_flops_per_s: float | None) -> float | None:
    return rate(achieved_flops_per_s, peak_flops_per_s)


def attainable(compute_roof: float | None, memory_roof: float | None, intensity: float | None) -> float | None:
    """The roofline: min(compute roof, intensity x memory roof), FLOP/s. Either roof alone where the other
    (or the intensity) is unknown; None when neither is known."""
    bound = memory_roof * intensity if memory_roof and intensity else None
    candidates = [r for r in (compute_roof, bound) if r]
    return min(candidates) if candidates else None


def best_roof(rates: dict[str, float | None], precision: str) -> tuple[float | None, str]:
    """Pure: the compute roof of `precision` and the precision whose measured roof it is. A precision's own
    sweep can run a slow kernel (bf16 on a CPU without bf16 arithmetic runs aten's reference loop at 1% of
    fp32) while another kernel widens the same work to fp32 at full speed; the machine sustains the work at the
    faster of the two, so the roof is the best of its own and those of the precisions that hold its values
    exactly (`kernels.precision.EXACT_IN`)."""
    best, via = rates.get(precision), precision
    for wider in EXACT_IN.get(precision, ()):
        rate = rates.get(wider)
        if rate and (not best or rate > best):
            best, via = rate, wider
    return best, via


def widened_roofs(rates: dict[str, float | None]) -> dict[str, tuple[str, float]]:
    """Pure: the precisions held to a wider precision's roof, above their own: {precision: (wider, rate)}."""
    out = {}
    for precision in rates:
        rate, via = best_roof(rates, precision)
        if via != precision:
            out[precision] = (via, rate)
    return out
