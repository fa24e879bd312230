"""Compare two runs configuration by configuration (matched by config_id; in fleet runs by device and config_id).

Like pyperf, refuse to compare runs that are not alike (a different energy meter, thread count, torch
version or device) unless the caller accepts it; then every output says what differed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hwprof.errors import BadInput
from hwprof.running.results import read_results
from hwprof.running.rundir import atomic_write_text, read_run_json

RATIO_COLUMNS = ["time_s_median", "logical_flops_per_s", "logical_flops_per_j", "power_w", "hef_time",
                 "hef_energy", "rel_error"]


@dataclass
class Comparison:
    table: pd.DataFrame
    unlike: list[str]          # how the two runs' conditions differ (empty: alike)
    meta_a: dict
    meta_b: dict


def _conditions(meta: dict) -> dict[str, str]:
    desc = meta.get("device_description") or {}
    return {"energy meter": str((meta.get("energy") or {}).get("source")),
            "threads": str(meta.get("threads")),
            "torch": str(meta.get("torch")),
            "device": f"{meta.get('device')} ({desc.get('name', '?')})"}


def unlike_conditions(meta_a: dict, meta_b: dict) -> list[str]:
    a, b = _conditions(meta_a), _conditions(meta_b)
    return [f"{k}: {a[k]} vs {b[k]}" for k in a if a[k] != b[k]]


def compare_runs(run_a: Path, run_b: Path, allow_unlike: bool = False) -> Comparison:
    """One row per configuration in both runs: B/A ratios of every rate, and whether the time difference
    lies beyond both runs' CIs (the intervals do not overlap)."""
    meta_a, meta_b = read_run_json(run_a), read_run_json(run_b)
    unlike = unlike_conditions(meta_a, meta_b)
    if unlike and not allow_unlike:
        raise BadInput(f"{run_a} and {run_b} were measured under different conditions ({'; '.join(unlike)}); "
                       "their ratios would mix those differences in - compare alike runs, or accept it explicitly")
    a = _keyed(read_results(Path(run_a) / "results.csv"))
    b = _keyed(read_results(Path(run_b) / "results.csv"))
    common = [c for c in a.index if c in b.index]
    if not common:
        raise BadInput(f"{run_a} and {run_b} have no configuration in common (config_id)")
    rows = []
    for cid in common:
        ra, rb = a.loc[cid], b.loc[cid]
        row = {"config_id": cid, "status_a": ra["status"], "status_b": rb["status"],
               "energy_source_a": ra["energy_source"], "energy_source_b": rb["energy_source"]}
        for col in RATIO_COLUMNS:
            row[f"{col}_a"], row[f"{col}_b"] = ra[col], rb[col]
            row[f"{col}_ratio"] = _ratio(rb[col], ra[col])
        both_ok = ra["status"] == "ok" and rb["status"] == "ok"
        significant = both_ok and (rb["time_s_ci_low"] > ra["time_s_ci_high"] or ra["time_s_ci_low"] > rb["time_s_ci_high"])
        row["time_ci_overlap"] = (not significant) if both_ok else None
        row["significant"] = bool(significant)
        # hef: significant only beyond both runs' intervals over paired rounds
        row["hef_time_significant"] = bool(both_ok and _disjoint(ra, rb, "hef_time_ci_low", "hef_time_ci_high"))
        row["energy_estimated"] = "estimate" in (ra["energy_source"], rb["energy_source"])
        rows.append(row)
    return Comparison(pd.DataFrame(rows), unlike, meta_a, meta_b)


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    """Rows indexed by configuration; in a fleet run by device and configuration ("UUID :: config_id"),
    so each device is compared with itself."""
    if "device_uuid" in df and df["device_uuid"].astype(str).ne("").any():
        return df.set_index(df["device_uuid"].astype(str) + " :: " + df["config_id"])
    return df.set_index("config_id")


def _disjoint(ra, rb, lo: str, hi: str) -> bool:
    try:
        a_lo, a_hi, b_lo, b_hi = (float(x) for x in (ra.get(lo), ra.get(hi), rb.get(lo), rb.get(hi)))
    except (TypeError, ValueError):
        return False
    if any(math.isnan(x) for x in (a_lo, a_hi, b_lo, b_hi)):
        return False
    return b_lo > a_hi or a_lo > b_hi


def _ratio(b, a) -> float:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(a) or math.isnan(b) or a == 0:
        return math.nan
    return b / a


def write_comparison(cmp: Comparison, out_dir: Path, run_a: Path, run_b: Path) -> list[Path]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BadInput(f"output directory {out_dir}: not a directory")
    table = cmp.table
    csv_path, md_path = out_dir / "compare.csv", out_dir / "compare.md"
    atomic_write_text(csv_path, table.to_csv(index=False))
    view = table[["config_id", "status_a", "status_b", "time_s_median_ratio", "logical_flops_per_s_ratio",
                  "logical_flops_per_j_ratio", "hef_time_ratio", "rel_error_ratio", "energy_source_a",
                  "energy_source_b", "significant", "hef_time_significant"]]
    md = ["# hwprof compare", "", f"A: `{run_a}`", "", f"B: `{run_b}`", "",
          "Ratios are B / A. `significant`: the intervals of the two median times (over rounds) do not overlap; "
          "`hef_time_significant`: the two hef_time intervals over paired rounds do not overlap.", ""]
    if cmp.unlike:
        md += ["**The runs were measured under different conditions**, so ratios include those differences: "
               + "; ".join(cmp.unlike) + ".", ""]
    if table["energy_estimated"].any():
        md += ["**FLOP/J ratios involve an ESTIMATED energy** (TDP x CPU utilisation, not a measurement) "
               "where an energy_source is `estimate`.", ""]
    md += [view.to_markdown(index=False, floatfmt=".4g"), ""]
    atomic_write_text(md_path, "\n".join(md))
    return [csv_path, md_path]
