"""Efficiency arithmetic (pure): rates, hidden-efficiency factors, doublings, MFU."""
from __future__ import annotations

import math


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
