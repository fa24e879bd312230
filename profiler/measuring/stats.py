"""Statistics of timing samples (pure).

The confidence interval of the median is distribution-free: order statistics whose ranks come from
Binomial(n, 1/2), so it holds for the skewed, heavy-tailed distributions benchmark timings have.
With fewer than 6 samples no 95% interval exists; the range is reported and `exact` is False.
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (l, u) of the order statistics bounding the median's CI, or None if n is too small.

    l is the largest rank with P(X <= l-1) <= alpha/2 for X ~ Binomial(n, 1/2); the CDF is accumulated
    term by term in exact integers (O(n), not a fresh sum per candidate rank)."""
    alpha = 1.0 - confidence
    if n > 1000:   # normal approximation; agrees with the exact ranks to within one at this size
        z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        l = max(1, int(math.floor(n / 2 - z * math.sqrt(n) / 2)))
        return l, n + 1 - l
    limit = alpha / 2 * 2 ** n          # compare sum(comb(n, i)) against alpha/2 * 2^n
    term, cdf, l = 1, 0, 0              # term = comb(n, l)
    while True:
        cdf += term
        if cdf > limit:
            break
        l += 1
        term = term * (n - l + 1) // l
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


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval of the median of `values` (None when there are too few for it)."""
    ranks = median_ci_ranks(len(values), confidence)
    if ranks is None:
        return None
    xs = sorted(values)
    return xs[ranks[0] - 1], xs[ranks[1] - 1]


def two_speeds(values: list[float], min_gap: float) -> tuple[float, float] | None:
    """The two levels (each group's median) when `values` split, at one gap of at least `min_gap` (relative),
    into two groups each holding at least a third of the values (two at the least) and each spread less than
    the gap; else None. A kernel whose rounds do this ran at two speeds, often enough that the median of
    another run's rounds can land on either: that run can differ by the whole gap. A few slow rounds among
    many do not count; the median does not move for them."""
    xs = sorted(v for v in values if v > 0)
    least = max(2, math.ceil(len(xs) / 3))
    if len(xs) < 2 * least:
        return None
    k = max(range(least, len(xs) - least + 1), key=lambda i: xs[i] / xs[i - 1])
    gap = xs[k] / xs[k - 1] - 1.0
    if gap < min_gap or xs[k - 1] / xs[0] - 1.0 >= gap or xs[-1] / xs[k] - 1.0 >= gap:
        return None
    return statistics.median(xs[:k]), statistics.median(xs[k:])
