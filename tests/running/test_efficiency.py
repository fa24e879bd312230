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


def test_a_precision_is_held_to_the_best_roof_of_those_that_hold_its_values_exactly():
    # An AVX2 CPU: bf16's own sweep runs aten's reference loop at 1% of fp32, but bf16 work widened to fp32
    # (MKL's bf16 GEMM, torch's CPU attention) runs at the fp32 rate, so that is the roof a bf16 row meets.
    rates = {"fp64": 6e10, "fp32": 1.2e11, "bf16": 1.35e9, "int8": 4e9, "fp16": None}
    assert eff.best_roof(rates, "bf16") == (1.2e11, "fp32")
    assert eff.best_roof(rates, "fp16") == (1.2e11, "fp32")       # its own not measured at all
    assert eff.best_roof(rates, "fp32") == (1.2e11, "fp32")       # fp64 is slower: its own stands
    assert eff.best_roof(rates, "fp64") == (6e10, "fp64")         # nothing is wider than fp64
    assert eff.best_roof({"bf16": 3e12, "fp32": 1e12}, "bf16") == (3e12, "bf16")   # AMX: its own is higher
    assert eff.best_roof(rates, "nf4") == (None, "nf4")
    assert eff.widened_roofs(rates) == {"bf16": ("fp32", 1.2e11), "fp16": ("fp32", 1.2e11), "int8": ("fp32", 1.2e11)}

