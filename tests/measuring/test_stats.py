import random

import pytest

from hwprof.measuring.stats import median_ci_ranks, summarize


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
