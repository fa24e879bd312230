"""Published efficiency claims, checked against a run's measurements.

Each claim carries its source and the thresholds of its verdict, written here next to it: a verdict is
arithmetic on measured numbers, never a judgement made at run time. Claims about algorithms or training
practice are said to be outside what kernel timings can measure, with what the measured factors would
account for where that can be stated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from hwprof.measuring.peaks import gpu_table

HOLDS, FAILS, NOT_MEASURABLE, NOT_MEASURED = "holds", "does not hold", "not measurable from kernel timings", \
    "not measured in this run"

# Pruning: "90% smaller, 10x cheaper inference". Holds where a row at density 0.1 is at least 80% of 10x.
PRUNING_DENSITY = 0.1
PRUNING_DENSITY_TOLERANCE = 0.02          # rows whose achieved density is within 0.1 +- 0.02
PRUNING_FACTOR = 10.0
PRUNING_SHARE_FOR_HOLDS = 0.8
# Low-precision formats: "roughly 5-12x the throughput of FP32". Holds where some format reaches 5x.
LOW_PRECISION_RANGE = (5.0, 12.0)
LOW_PRECISION_FORMATS = ("tf32", "fp16", "bf16", "fp8_e4m3", "int8", "w8a8", "w8a16", "fp8-row", "fp8w")
# Hardware energy efficiency: "about 50% a year". Holds where the datasheet trend is within 25%..75%/yr.
ENERGY_GROWTH_CLAIM = 0.50
ENERGY_GROWTH_BAND = (0.25, 0.75)
TREND_FORMAT = "fp16"                     # the 16-bit tensor format every GPU of the table has
# Software progress "about 10x a year": kernels cannot see algorithms.
SOFTWARE_FACTOR_PER_YEAR = 10.0


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    source: str
    measured: str
    verdict: str


def _ok_matmuls(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & (df["kernel"] == "matmul") & df["hef_time"].notna()]


def pruning(df: pd.DataFrame, models: pd.DataFrame | None) -> ClaimCheck:
    claim = ("Pruning can reduce model size by 90% without losing accuracy, offering a 10x reduction in "
             "inference cost")
    source = "the pruning literature, e.g. Han et al. (2015), 9-13x fewer weights at no accuracy loss"
    mm = _ok_matmuls(df)
    sparse = mm[mm["sparsity"].isin(["unstructured"]) | mm["sparsity"].str.startswith("block")]
    near = sparse[(sparse["density"] - PRUNING_DENSITY).abs() <= PRUNING_DENSITY_TOLERANCE]
    parts = []
    for r in near.sort_values("hef_time", ascending=False).to_dict("records")[:4]:
        energy = f", hef_energy {r['hef_energy']:.2f}" if pd.notna(r.get("hef_energy")) else ""
        perr = f", pruning error {r['pruning_error']:.2f}" if pd.notna(r.get("pruning_error")) else ""
        parts.append(f"{r['config_id']} at density {r['density']:.3g}: hef_time {r['hef_time']:.2f}{energy}{perr}")
    if models is not None and not models.empty:
        sparse_models = models[(models["status"] == "ok") & models["sparsity"].astype(str).str.contains(":0.1")]
        for r in sparse_models.to_dict("records"):
            parts.append(f"model {r['model']} {r['precision']} {r['sparsity']}: hef_time {r['hef_time']:.2f}")
    if near.empty:
        return ClaimCheck(claim, source, "no unstructured or block-sparse matmul at density 0.1 in this run",
                          NOT_MEASURED)
    best = near["hef_time"].max()
    verdict = HOLDS if best >= PRUNING_SHARE_FOR_HOLDS * PRUNING_FACTOR else FAILS
    note = (f"; best {best:.2f}x against the {PRUNING_FACTOR:g}x claimed (holds at >= "
            f"{PRUNING_SHARE_FOR_HOLDS * PRUNING_FACTOR:g}x). Accuracy is not measured: pruning_error is the "
            "random-weight product's error, not a trained network's accuracy")
    return ClaimCheck(claim, source, "; ".join(parts) + note, verdict)


def low_precision(df: pd.DataFrame) -> ClaimCheck:
    claim = "Lower-precision tensor formats give roughly 5-12x the throughput of FP32"
    source = "Epoch AI, machine learning hardware data (tensor formats against FP32)"
    mm = _ok_matmuls(df)
    mm = mm[(mm["sparsity"] == "dense") & mm["precision"].isin(LOW_PRECISION_FORMATS)]
    if mm.empty:
        return ClaimCheck(claim, source, "no dense low-precision matmul in this run", NOT_MEASURED)
    parts = []
    for prec, g in mm.groupby("precision"):
        r = g.loc[g["hef_time"].idxmax()]
        parts.append(f"{prec} {r['hef_time']:.2f}x at {r['shape']} (rel_error {r['rel_error']:.2g})")
    best = mm["hef_time"].max()
    low, high = LOW_PRECISION_RANGE
    verdict = HOLDS if best >= low else FAILS
    where = "above the range" if best > high else "within the range" if best >= low else "below the range"
    return ClaimCheck(claim, source, f"best per format: {'; '.join(parts)}. Best {best:.2f}x, {where} "
                      f"{low:g}-{high:g}x (holds at >= {low:g}x); device {df['device'].iloc[0]}", verdict)


def energy_trend(best_format: bool = False) -> tuple[float, float, int] | None:
    """Least-squares slope of log2(datasheet FLOP/J) on release year over the GPU table: (doublings per
    year, implied growth per year, parts used). In TREND_FORMAT (like for like), or with best_format each
    part's fastest dense tensor format (which also counts the move to fp8 and int8)."""
    def rate(e):
        return max(e.tflops.values()) if best_format else e.tflops.get(TREND_FORMAT)
    pts = [(e.year, math.log2(rate(e) * 1e12 / e.tdp_w)) for e in gpu_table() if rate(e) and e.year and e.tdp_w]
    if len({y for y, _ in pts}) < 2:
        return None
    my = sum(y for y, _ in pts) / len(pts)
    mv = sum(v for _, v in pts) / len(pts)
    slope = sum((y - my) * (v - mv) for y, v in pts) / sum((y - my) ** 2 for y, _ in pts)
    return slope, 2 ** slope - 1, len(pts)


def energy_efficiency(df: pd.DataFrame, meta: dict) -> ClaimCheck:
    claim = "Hardware energy efficiency improves about 50% a year"
    source = "Epoch AI, trends in machine learning hardware (FLOP/s per watt)"
    trend = energy_trend()
    if trend is None:
        return ClaimCheck(claim, source, "the GPU table has too few dated parts", NOT_MEASURED)
    slope, growth, n = trend
    low, high = ENERGY_GROWTH_BAND
    verdict = HOLDS if low <= growth <= high else FAILS
    years = [e.year for e in gpu_table()]
    best = energy_trend(best_format=True)
    text = (f"datasheet {TREND_FORMAT} tensor FLOP/J over the {n} GPUs of hwprof's peak table (data-centre and "
            f"workstation parts, {min(years)}-{max(years)}): {slope:.2f} doublings/yr = {growth:.0%}/yr (holds within "
            f"{low:.0%}-{high:.0%}); in each part's fastest format (fp8/int8 where it has them) "
            f"{best[0]:.2f} doublings/yr = {best[1]:.0%}/yr, the difference being the format gains of the claim above")
    gpu = (meta.get("device_description") or {}).get("gpu") or {}
    entry = gpu.get("peak_table_entry")
    if entry:
        e = next(x for x in gpu_table() if x.name == entry)
        sheet = e.tflops.get(TREND_FORMAT, 0) * 1e12 / e.tdp_w
        mm = _ok_matmuls(df)
        mm = mm[mm["precision"].isin(["fp16", "bf16"]) & mm["logical_flops_per_j"].notna()]
        if not mm.empty and sheet:
            best = mm["logical_flops_per_j"].max()
            text += (f"; this run's {entry} ({e.year}): best measured 16-bit {best:.3g} FLOP/J = "
                     f"{best / sheet:.0%} of its datasheet {sheet:.3g} FLOP/J")
    return ClaimCheck(claim, source, text, verdict)


def software_progress(df: pd.DataFrame) -> ClaimCheck:
    claim = "AI software progress may deliver about 10x efficiency gains per year"
    source = "Epoch AI, algorithmic progress estimates"
    mm = _ok_matmuls(df)
    text = ("kernel timings cannot measure algorithmic progress (better architectures, data, training recipes); "
            "they measure hardware-and-format factors only")
    if not mm.empty:
        best = mm.loc[mm["hef_time"].idxmax()]
        share = math.log(best["hef_time"]) / math.log(SOFTWARE_FACTOR_PER_YEAR) if best["hef_time"] > 1 else 0.0
        text += (f". The largest measured factor, {best['hef_time']:.2f}x ({best['config_id']}), is a one-off "
                 f"switch worth {share:.0%} of one year's {SOFTWARE_FACTOR_PER_YEAR:g}x on a log scale")
    return ClaimCheck(claim, source, text, NOT_MEASURABLE)


def scale_dependence() -> ClaimCheck:
    return ClaimCheck(
        "About 91% of efficiency gains at the frontier come from scale-dependent innovations (LSTM to "
        "Transformer, Kaplan to Chinchilla)",
        "Gundlach et al. (2025), on the origins of algorithmic progress",
        "a statement about architectures and scaling recipes across model sizes; kernel timings on one "
        "machine see neither", NOT_MEASURABLE)


def check_claims(df: pd.DataFrame, meta: dict, models: pd.DataFrame | None = None) -> list[ClaimCheck]:
    return [pruning(df, models), low_precision(df), energy_efficiency(df, meta), software_progress(df),
            scale_dependence()]
