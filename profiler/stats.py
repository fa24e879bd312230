"""Statistics of timing samples (pure).

The confidence interval of the median is distribution-free: order statistics whose ranks come from
Binomial(n, 1/2), so it holds for the skewed, heavy-tailed distributions benchmark timings have.
With fewer than 6 samples no 95% interval exists; the range is reported and `exact` is False.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    ci_low: float
    ci_high: float
    rel_iqr: float
    n: int
    exact: bool          # False when n is too small for the requested confidence

    @property
    def rel_ci_halfwidth(self) -> float:
        if self.median <= 0:
            return math.inf
        return (self.ci_high - self.ci_low) / 2.0 / self.median


def _binom_cdf_half(j: int, n: int) -> float:
    """P(X <= j) for X ~ Binomial(n, 1/2)."""
    if j < 0:
        return 0.0
    return math.fsum(math.comb(n, i) for i in range(j + 1)) / 2.0 ** n


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (l, u) of the order statistics bounding the median's CI, or None if n is too small."""
    alpha = 1.0 - confidence
    if n > 1000:   # normal approximation; exact sums of huge binomials are slow and pointless here
        z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        l = int(math.floor(n / 2 - z * math.sqrt(n) / 2))
        return max(1, l), n + 1 - max(1, l)
    l = 0
    while _binom_cdf_half(l, n) <= alpha / 2:   # P(X <= l) <= alpha/2  ->  rank l+1 is a valid lower bound
        l += 1
    if l == 0:
        return None
    return l, n + 1 - l


def summarize(samples: list[float], confidence: float = 0.95) -> Summary:
    if not samples:
        raise ValueError("no samples")
    xs = sorted(samples)
    n = len(xs)
    med = statistics.median(xs)
    ranks = median_ci_ranks(n, confidence)
    if ranks is None:
        lo, hi, exact = xs[0], xs[-1], False
    else:
        lo, hi, exact = xs[ranks[0] - 1], xs[ranks[1] - 1], True
    if n >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    rel_iqr = (q3 - q1) / med if med > 0 else math.inf
    return Summary(med, lo, hi, rel_iqr, n, exact)
