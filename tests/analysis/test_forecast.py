"""Forecast formulas against values computed independently (numerical integration, published fits)."""
import math

import pytest

from hwprof.analysis import forecast as fc


def integrated_cumulative(t: float, beta: float, steps: int = 20000) -> float:
    """1 + integral_0^t 2^(beta s) ds by Simpson's rule: independent of the closed form."""
    h = t / steps
    total = sum((1 if i in (0, steps) else 4 if i % 2 else 2) * 2 ** (beta * i * h) for i in range(steps + 1))
    return 1 + total * h / 3


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0, 2.0, -0.3])
def test_cumulative_compute_matches_integration(beta):
    assert fc.cumulative_compute(20, beta) == pytest.approx(integrated_cumulative(20, beta), rel=1e-9)


@pytest.mark.parametrize("beta,expected", [
    (0.0, 21 ** -0.063),
    (0.5, (1 + (2 ** 10 - 1) / (0.5 * math.log(2))) ** -0.063),
    (1.0, (1 + (2 ** 20 - 1) / math.log(2)) ** -0.063),
])
def test_excess_loss_ratio_kappa_0063_over_20_years(beta, expected):
    x = fc.excess_loss_ratio(20, 0.063, beta)
    assert x == pytest.approx(expected, rel=1e-12)
    assert x == pytest.approx(integrated_cumulative(20, beta) ** -0.063, rel=1e-9)


def test_numbers_a_reader_can_check():
    assert fc.excess_loss_ratio(20, 0.063, 0.0) == pytest.approx(0.8255, abs=1e-4)     # 21^-0.063
    assert fc.excess_loss_ratio(20, 0.063, 1.0) == pytest.approx(0.4080, abs=1e-4)     # e^(-0.063 ln(1 + 2^20/ln2))


def test_beta_to_zero_limit_is_continuous():
    for t in (0.5, 5, 20):
        assert fc.cumulative_compute(t, 1e-12) == pytest.approx(1 + t, rel=1e-9)
        assert fc.cumulative_compute(t, -1e-12) == pytest.approx(1 + t, rel=1e-9)


def test_monotonicity():
    xs = [fc.excess_loss_ratio(t, 0.1, 0.7) for t in range(0, 30)]
    assert all(a > b for a, b in zip(xs, xs[1:]))
    by_beta = [fc.excess_loss_ratio(10, 0.1, b) for b in (0, 0.5, 1, 2)]
    assert all(a > b for a, b in zip(by_beta, by_beta[1:]))


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0, 3.0, -0.05])
@pytest.mark.parametrize("target", [0.9, 0.5, 0.25])
def test_years_to_ratio_round_trips(beta, target):
    t = fc.years_to_ratio(target, 0.063, beta)
    if math.isinf(t):
        assert beta < 0
        limit = 1 + 1 / (-beta * math.log(2))        # bounded cumulative compute when efficiency decays
        assert limit ** -0.063 > target
    else:
        assert fc.excess_loss_ratio(t, 0.063, beta) == pytest.approx(target, rel=1e-9)


def test_doublings_to_ratio():
    assert fc.doublings_to_ratio(0.5, 0.063) == pytest.approx(1 / 0.063)
    assert fc.doublings_to_ratio(1.0, 0.2) == 0.0
    with pytest.raises(ValueError):
        fc.doublings_to_ratio(1.5, 0.1)
    with pytest.raises(ValueError):
        fc.doublings_to_ratio(0.5, 0.0)


def test_chinchilla_kappa_and_optimal_allocation():
    law = fc.ChinchillaLaw()
    assert law.kappa == pytest.approx(0.154, abs=5e-4)
    c = 5.76e23                                            # Chinchilla's training compute
    n, d = law.optimal_allocation(c)
    assert 6 * n * d == pytest.approx(c)
    # the optimum beats nearby allocations of the same compute
    for f in (0.5, 2.0):
        assert law.optimal_loss(c) < law.loss(n * f, c / (6 * n * f))
    # compute-optimal loss follows E + K C^-kappa
    l1, l2 = law.optimal_loss(c) - law.E, law.optimal_loss(8 * c) - law.E
    assert l2 / l1 == pytest.approx(8 ** -law.kappa, rel=1e-9)


def test_loss_at_and_training_cost():
    assert fc.loss_at(0, 3.0, 2.0, 0.1, 1.0) == pytest.approx(3.0)
    assert fc.loss_at(10, 3.0, 2.0, 0.1, 1.0) < 3.0
    c, t, j = fc.training_cost(1e9, 2e10, 1e15, 1e12)
    assert c == 1.2e20 and t == pytest.approx(1.2e5) and j == pytest.approx(1.2e8)
    assert fc.training_cost(1, 1, None, None)[1:] == (None, None)


def test_constants_are_the_published_ones():
    import dataclasses
    assert fc.SECONDS_PER_YEAR == 31_557_600                   # Julian year
    law = fc.ChinchillaLaw()
    assert (law.E, law.A, law.B, law.alpha, law.beta) == (1.69, 406.4, 410.7, 0.34, 0.28)   # Hoffmann et al.
    with pytest.raises(dataclasses.FrozenInstanceError):
        law.E = 2.0


def test_years_to_ratio_at_and_beyond_the_bounded_compute_limit():
    """With efficiency halving, cumulative compute is bounded: at the bound exactly (arg = -1) and past it the
    target is never reached (and log1p is never asked for a value at or below -1)."""
    at_bound = -1 / fc.LN2                     # (r - 1) * b * ln2 = -1 for target 0.5, kappa 1 (r = 2)
    assert fc.years_to_ratio(0.5, 1.0, at_bound) == math.inf
    assert fc.years_to_ratio(0.5, 1.0, -1.5 / fc.LN2) == math.inf
    assert math.isfinite(fc.years_to_ratio(0.5, 1.0, -0.5 / fc.LN2))


def test_ratio_and_kappa_validation_messages():
    with pytest.raises(ValueError, match=r"^target ratio 0.0 is outside \(0, 1\]$"):
        fc.compute_for_ratio(0.0, 0.1)
    with pytest.raises(ValueError, match=r"^target ratio 1.5 is outside \(0, 1\]$"):
        fc.compute_for_ratio(1.5, 0.1)
    with pytest.raises(ValueError, match="^kappa 0.0 must be positive$"):
        fc.compute_for_ratio(0.5, 0.0)
    assert fc.compute_for_ratio(1.0, 0.1) == 1.0


def test_optimal_allocation_is_the_numerical_minimum():
    """Independent: minimise L(N, C/6N) over N by ternary search in log N and compare with the closed form."""
    law = fc.ChinchillaLaw()
    for c in (1e20, 5.76e23, 1e26):
        lo, hi = math.log(1e3), math.log(1e15)
        loss = lambda ln_n: law.loss(math.exp(ln_n), c / (6 * math.exp(ln_n)))  # noqa: E731
        for _ in range(200):
            m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            lo, hi = (lo, m2) if loss(m1) < loss(m2) else (m1, hi)
        n, d = law.optimal_allocation(c)
        assert n == pytest.approx(math.exp((lo + hi) / 2), rel=1e-6)
        assert d == pytest.approx(c / (6 * n), rel=1e-12)
