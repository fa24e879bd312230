"""Compare two runs configuration by configuration (matched by config_id)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from hwprof.errors import BadInput
from hwprof.running.rundir import atomic_write_text, read_run_json
from hwprof.running.results import read_results

RATIO_COLUMNS = ["time_s_median", "logical_flops_per_s", "logical_flops_per_j", "power_w", "hef_time",
                 "hef_energy", "rel_error"]


def _load(run_dir: Path) -> pd.DataFrame:
    read_run_json(run_dir)
    return read_results(Path(run_dir) / "results.csv").set_index("config_id")


def compare_runs(run_a: Path, run_b: Path) -> pd.DataFrame:
    """One row per configuration in both runs: B/A ratios of every rate, and whether the time difference
    lies beyond both runs' 95% CIs (the intervals do not overlap)."""
    a, b = _load(run_a), _load(run_b)
    common = [c for c in a.index if c in b.index]
    if not common:
        raise BadInput(f"{run_a} and {run_b} have no configuration in common (config_id)")
    rows = []
    for cid in common:
        ra, rb = a.loc[cid], b.loc[cid]
        row = {"config_id": cid, "status_a": ra["status"], "status_b": rb["status"]}
        for col in RATIO_COLUMNS:
            row[f"{col}_a"], row[f"{col}_b"] = ra[col], rb[col]
            row[f"{col}_ratio"] = _ratio(rb[col], ra[col])
        both_ok = ra["status"] == "ok" and rb["status"] == "ok"
        significant = both_ok and (rb["time_s_ci_low"] > ra["time_s_ci_high"] or ra["time_s_ci_low"] > rb["time_s_ci_high"])
        row["time_ci_overlap"] = (not significant) if both_ok else None
        row["significant"] = bool(significant)
        rows.append(row)
    return pd.DataFrame(rows)


def _ratio(b, a) -> float:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(a) or math.isnan(b) or a == 0:
        return math.nan
    return b / a


def write_comparison(table: pd.DataFrame, out_dir: Path, run_a: Path, run_b: Path) -> list[Path]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BadInput(f"output directory {out_dir}: not a directory")
    csv_path, md_path = out_dir / "compare.csv", out_dir / "compare.md"
    atomic_write_text(csv_path, table.to_csv(index=False))
    view = table[["config_id", "status_a", "status_b", "time_s_median_ratio", "logical_flops_per_s_ratio",
                  "logical_flops_per_j_ratio", "hef_time_ratio", "rel_error_ratio", "significant"]]
    md = ["# hwprof compare", "", f"A: `{run_a}`", "", f"B: `{run_b}`", "",
          "Ratios are B / A. `significant`: the 95% CIs of the two median times do not overlap.", "",
          view.to_markdown(index=False, floatfmt=".4g"), ""]
    atomic_write_text(md_path, "\n".join(md))
    return [csv_path, md_path]
