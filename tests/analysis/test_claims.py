"""Claims: each verdict follows its written threshold on the measured numbers."""
import math

import pandas as pd
import pytest

from hwprof.analysis import claims as cl
from hwprof.measuring.peaks import gpu_table


def _df(*rows):
    base = dict(kernel="matmul", status="ok", shape="512x512x512", sparsity="dense", density=1.0, hef_energy=None,
                rel_error=1e-3, pruning_error=None, device="cpu", logical_flops_per_j=None)
    out = [dict(base, **r) for r in rows]
    for r in out:
        r.setdefault("config_id", f"matmul/{r['shape']}/{r['precision']}/{r['sparsity']}/fwd")
    return pd.DataFrame(out)


REF = dict(precision="fp32", hef_time=1.0)


@pytest.mark.parametrize("hef,verdict", [(8.0, cl.HOLDS), (7.9, cl.FAILS), (12.0, cl.HOLDS)])
def test_pruning_holds_at_eighty_percent_of_ten_x_at_density_point_one(hef, verdict):
    df = _df(REF, dict(precision="fp32", sparsity="unstructured", density=0.1004, hef_time=hef, pruning_error=0.95))
    c = cl.pruning(df, None)
    assert c.verdict == verdict and f"hef_time {hef:.2f}" in c.measured and "pruning error 0.95" in c.measured


def test_pruning_at_another_density_is_not_this_claim():
    c = cl.pruning(_df(REF, dict(precision="fp32", sparsity="unstructured", density=0.5, hef_time=20.0)), None)
    assert c.verdict == cl.NOT_MEASURED


def test_pruning_names_the_model_level_factor_too():
    models = pd.DataFrame([dict(model="tiny", precision="fp32", sparsity="unstructured:0.1", status="ok", hef_time=1.7)])
    df = _df(REF, dict(precision="fp32", sparsity="block:32", density=0.1, hef_time=3.0))
    c = cl.pruning(df, models)
    assert c.verdict == cl.FAILS and "model tiny fp32 unstructured:0.1: hef_time 1.70" in c.measured


@pytest.mark.parametrize("hef,verdict,where", [(4.99, cl.FAILS, "below"), (5.0, cl.HOLDS, "within"),
                                               (13.0, cl.HOLDS, "above")])
def test_low_precision_holds_from_five_x(hef, verdict, where):
    df = _df(REF, dict(precision="int8", hef_time=hef), dict(precision="bf16", hef_time=2.0))
    c = cl.low_precision(df)
    assert c.verdict == verdict and f"{where} the range" in c.measured and "bf16 2.00x" in c.measured
    assert cl.low_precision(_df(REF)).verdict == cl.NOT_MEASURED


def test_the_energy_trend_is_a_least_squares_fit_over_the_dated_table():
    pts = [(e.year, math.log2(e.tflops["fp16"] * 1e12 / e.tdp_w)) for e in gpu_table() if "fp16" in e.tflops]
    n = len(pts)
    sx, sy = sum(x for x, _ in pts), sum(y for _, y in pts)
    slope = (n * sum(x * y for x, y in pts) - sx * sy) / (n * sum(x * x for x, _ in pts) - sx ** 2)
    got, growth, used = cl.energy_trend()
    assert got == pytest.approx(slope) and growth == pytest.approx(2 ** slope - 1) and used == n >= 15
    c = cl.energy_efficiency(_df(REF), {})
    low, high = cl.ENERGY_GROWTH_BAND
    assert c.verdict == (cl.HOLDS if low <= growth <= high else cl.FAILS)
    assert f"{growth:.0%}/yr" in c.measured


def test_on_a_known_gpu_the_run_is_placed_against_its_datasheet():
    h100 = next(e for e in gpu_table() if e.name == "H100 SXM")
    sheet = h100.tflops["fp16"] * 1e12 / h100.tdp_w
    df = _df(REF, dict(precision="bf16", hef_time=10.0, logical_flops_per_j=sheet / 2))
    c = cl.energy_efficiency(df, {"device_description": {"gpu": {"peak_table_entry": "H100 SXM"}}})
    assert "H100 SXM (2022)" in c.measured and "50% of its datasheet" in c.measured


def test_what_kernels_cannot_measure_is_said_plainly():
    c = cl.software_progress(_df(REF, dict(precision="int8", hef_time=10.0)))
    assert c.verdict == cl.NOT_MEASURABLE and "worth 100% of one year's 10x" in c.measured
    c = cl.software_progress(_df(REF, dict(precision="int8", hef_time=math.sqrt(10))))
    assert "worth 50%" in c.measured
    assert cl.scale_dependence().verdict == cl.NOT_MEASURABLE
    assert [c.verdict for c in cl.check_claims(_df(REF), {})][-2:] == [cl.NOT_MEASURABLE, cl.NOT_MEASURABLE]


def test_the_best_format_trend_counts_each_parts_fastest_format():
    pts = [(e.year, math.log2(max(e.tflops.values()) * 1e12 / e.tdp_w)) for e in gpu_table()]
    n = len(pts)
    sx, sy = sum(x for x, _ in pts), sum(y for _, y in pts)
    slope = (n * sum(x * y for x, y in pts) - sx * sy) / (n * sum(x * x for x, _ in pts) - sx ** 2)
    assert cl.energy_trend(best_format=True)[0] == pytest.approx(slope)
    assert "fastest format" in cl.energy_efficiency(_df(REF), {}).measured
