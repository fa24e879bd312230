import random

import pytest

from hwprof.measuring.stats import median_ci_ranks, summarize, two_speeds


@pytest.mark.parametrize("n,ranks", [(5, None), (6, (1, 6)), (10, (2, 9)), (20, (6, 15)), (50, (18, 33)),
                                     (100, (40, 61)), (1000, (469, 532))])
def test_median_ci_ranks_match_binomial_tables(n, ranks):
    assert median_ci_ranks(n) == ranks


def test_ci_covers_the_true_median_about_95_percent():
    rng = random.Random(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        xs = [rng.lognormvariate(0, 0.5) for _ in range(25)]     # skewed, true median = 1
        s = summarize(xs)
        hits += s.ci_low <= 1.0 <= s.ci_high
    assert 0.93 <= hits / trials <= 0.995


def test_summary_fields():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert s.median == 4.0 and s.n == 7 and s.exact
    assert s.rel_iqr == pytest.approx((5.5 - 2.5) / 4.0)
    few = summarize([1.0, 1.1])
    assert not few.exact and few.ci_low == 1.0 and few.ci_high == 1.1


def test_empty_samples_rejected():
    with pytest.raises(ValueError):
        summarize([])


def test_normal_approximation_joins_the_exact_ranks():
    lo_exact, _ = median_ci_ranks(1000)
    lo_approx, _ = median_ci_ranks(1001)
    assert abs(lo_exact - lo_approx) <= 1


def _exact_ranks(n, confidence):
    """Independent: the largest l with P(X <= l-1) <= alpha/2, X ~ Binomial(n, 1/2), in exact fractions."""
    from fractions import Fraction
    half_alpha = (1 - Fraction(confidence).limit_denominator(10**6)) / 2
    l, cdf = 0, Fraction(0)
    while True:
        cdf += Fraction(__import__("math").comb(n, l), 2 ** n)
        if cdf > half_alpha:
            break
        l += 1
    return None if l == 0 else (l, n + 1 - l)


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.975, 0.99])
def test_exact_ranks_against_an_independent_binomial(confidence):
    for n in list(range(1, 120)) + [257, 640, 999, 1000]:
        assert median_ci_ranks(n, confidence) == _exact_ranks(n, confidence), (n, confidence)


@pytest.mark.parametrize("n", [1001, 1500, 4000])
def test_normal_approximation_is_within_one_rank_and_symmetric(n):
    lo, hi = median_ci_ranks(n, 0.95)
    exact_lo, exact_hi = _exact_ranks(n, 0.95)
    assert abs(lo - exact_lo) <= 1 and hi == n + 1 - lo and 1 <= lo < n / 2


def test_relative_half_width_and_degenerate_medians():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert (s.ci_low, s.ci_high) == (2.0, 9.0)
    assert s.rel_ci_halfwidth == pytest.approx((9.0 - 2.0) / 2 / 5.5)
    zero = summarize([0.0] * 10)
    assert zero.rel_ci_halfwidth == float("inf") and zero.rel_iqr == float("inf")
    with pytest.raises(Exception):
        s.median = 3.0                        # summaries are frozen values


def test_too_few_samples_show_the_range_and_the_empty_case_is_named():
    few = summarize([3.0, 1.0, 2.0])
    assert (few.ci_low, few.ci_high, few.exact, few.n) == (1.0, 3.0, False, 3)
    one = summarize([2.0])
    assert one.rel_iqr == 0.0 and one.median == 2.0
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def test_median_ci_of_values():
    from hwprof.measuring.stats import median_ci
    assert median_ci([5.0, 1.0, 4.0, 2.0, 3.0, 6.0], 0.95) == (1.0, 6.0)
    assert median_ci([1.0, 2.0], 0.95) is None


def test_timings_below_one_second_have_finite_widths():
    """Real timings are fractions of a second: the degenerate-median guards must only catch zero."""
    s = summarize([1e-3 * (1 + i / 100) for i in range(10)])
    assert 0 < s.rel_ci_halfwidth < 0.05 and 0 < s.rel_iqr < 0.1


def test_two_samples_have_an_interquartile_range():
    assert summarize([1.0, 3.0]).rel_iqr == pytest.approx((2.5 - 1.5) / 2.0)


def test_empty_samples_message_is_exact():
    with pytest.raises(ValueError, match="^no samples$"):
        summarize([])


def test_median_ci_defaults_to_95_percent():
    from hwprof.measuring.stats import median_ci
    values = [float(i) for i in range(1, 18)]                  # n = 17: 95% and 96% ranks differ
    assert median_ci(values) == median_ci(values, 0.95) != median_ci(values, 0.96)


def test_two_speeds_finds_rounds_split_by_one_wide_gap():
    # shaped like bf16 [16, 1024, 1024] on the Zen 5 VM, whose rounds spanned 73.0-110.4 us: two speeds, no between
    lo, hi = two_speeds([74.1, 73.0, 109.2, 75.3, 110.4, 74.6, 108.8, 74.0], 0.15)
    assert lo == pytest.approx(74.1) and hi == pytest.approx(109.2)
    assert two_speeds([74.1, 73.0, 109.2, 75.3, 110.4, 74.6, 108.8, 74.0], 0.5) is None     # gap below the bar
    assert two_speeds([70, 78, 86, 95, 104, 114, 125, 137], 0.15) is None     # a smooth spread, no gap
    assert two_speeds([75] * 7 + [110], 0.15) is None                         # one slow round is no second speed
    assert two_speeds([75] * 6 + [110] * 2, 0.15) is None                     # nor are two of eight
    assert two_speeds([75] * 5 + [110] * 3, 0.15) == (75, 110)                # three of eight: a third
    assert two_speeds([75] * 20 + [110] * 4, 0.15) is None                    # a few slow windows of many
    assert two_speeds([60, 68, 80, 92, 106, 108], 0.15) is None              # a group as wide as the gap
    assert two_speeds([75, 110, 75], 0.15) is None and two_speeds([0.0, -1.0, 75, 75, 110, 110], 0.15) == (75, 110)


def test_two_speeds_rarely_fires_on_one_speed():
    """Seeded: 8 round medians of one speed with 3% noise (this VM's usual round spread is below that)."""
    rng = random.Random(5)
    fired = sum(two_speeds([rng.lognormvariate(0, 0.03) for _ in range(8)], 0.15) is not None for _ in range(5000))
    assert fired == 0
