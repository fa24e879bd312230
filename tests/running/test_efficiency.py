import math

import pytest

from hwprof.running import efficiency as eff


def test_rate_divides_and_refuses_missing_or_non_positive_costs():
    assert eff.rate(10.0, 4.0) == 2.5
    for cost in (None, 0.0, -1.0, math.inf, math.nan):
        assert eff.rate(10.0, cost) is None, cost
    assert eff.rate(None, 1.0) is None


def test_hef_is_a_ratio_over_the_reference():
    assert eff.hef(6.0, 2.0) == 3.0
    assert eff.hef(1.0, 4.0) == 0.25
    assert eff.hef(None, 1.0) is None and eff.hef(1.0, None) is None and eff.hef(1.0, 0.0) is None


def test_doublings_are_log2_with_their_sign():
    assert eff.doublings(8.0) == 3.0
    assert eff.doublings(0.125) == -3.0
    assert eff.doublings(1.0) == 0.0
    assert eff.doublings(0.0) is None and eff.doublings(None) is None


def test_mfu_is_rate_over_peak():
    assert eff.mfu(5e11, 1e12) == pytest.approx(0.5)
    assert eff.mfu(5e11, None) is None


def test_hef_with_small_reference_rates():
    assert eff.hef(0.5, 0.25) == 2.0 and eff.hef(1e-3, 5e-4) == 2.0


def test_attainable_is_the_lower_of_the_two_roofs_and_either_alone():
    from hwprof.running.efficiency import attainable
    assert attainable(100.0, 10.0, 2.0) == 20.0 and attainable(100.0, 10.0, 50.0) == 100.0
    assert attainable(100.0, None, 2.0) == 100.0 and attainable(100.0, 10.0, None) == 100.0
    assert attainable(None, 10.0, 2.0) == 20.0 and attainable(None, None, None) is None
