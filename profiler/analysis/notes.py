"""What a reader of a run must be told about rows whose number is not the hardware's best (pure: sentences
from the table and run.json, which the console and the report both print).

- `reference-impl`: the row measured a library's reference or fallback kernel (measuring.impl);
- `few-rounds`: one call is so long that the configuration's cap allowed fewer rounds than the suite asks;
- how far each precision's best row is from its theoretical peak, and through which ISA path;
- roofs a row of this run raised.
"""
from __future__ import annotations

import re

import pandas as pd

from hwprof.analysis.summaries import has_flag


def _rows(n: int) -> str:
    return "1 row was" if n == 1 else f"{n} rows were"


def _ids(ids: list[str], n: int = 3) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def reference_kernels(df: pd.DataFrame) -> list[str]:
    """One sentence per distinct implementation that measured a fallback instead of the hardware."""
    rows = df[(df["status"] == "ok") & has_flag(df, "reference-impl")]
    out = []
    for impl, g in rows.groupby(rows["impl"].fillna("").replace("", "(not recorded)"), sort=False):
        precisions = ", ".join(dict.fromkeys(g["precision"]))
        why = ("a library's reference implementation, a correctness fallback" if re.search(r"(^|[:;] ?)ref", impl)
               else "no library kernel at all (torch's own loop)")
        out.append(f"{_ids(list(g['config_id']))} ran {impl}: {why}. These rows measure that fallback, not this "
                   f"hardware's {precisions} path; their hef says what {precisions} costs with this torch build here, "
                   f"not what the hardware can do.")
    return out


def capped_rows(df: pd.DataFrame, meta: dict) -> list[str]:
    ids = list(df.loc[(df["status"] == "ok") & has_flag(df, "few-rounds"), "config_id"])
    if not ids:
        return []
    rounds = (meta.get("policy") or {}).get("rounds")
    return [f"{_rows(len(ids))} measured in fewer than the suite's {rounds} rounds because one call is long (flag "
            f"few-rounds): each configuration costs at most twice its budget plus one call, so a kernel of seconds "
            f"a call is seen without eating the run: {_ids(ids)}. Their intervals are wide or absent."]


def peak_distance(df: pd.DataFrame, meta: dict) -> list[str]:
    """Per precision: the best MFU against a theoretical peak, with the ISA path that peak counts."""
    by_source = {v.get("source"): v for v in (meta.get("peak_table") or {}).values()}
    ok = df[(df["status"] == "ok") & df["mfu"].notna()]
    parts, clock = [], ""
    for precision, g in ok.groupby(ok["precision"], sort=False):
        best = g.loc[g["mfu"].idxmax()]
        peak = by_source.get(best["peak_source"], {})
        if peak.get("kind") == "theoretical":
            parts.append(f"{precision} {best['mfu']:.0%} ({peak.get('path', '')}; {best['config_id']})")
            clock = clock or peak.get("clock", "")
    if not parts:
        return []
    return [f"Against the theoretical peak ({clock}), the best row per precision reached: " + "; ".join(parts) + "."]


def roofs_raised(meta: dict) -> list[str]:
    raised = meta.get("roofs_raised") or []
    return [f"Rows of this run beat the measured roofs, which were raised (and cached): {'; '.join(raised)}."] if raised else []


def notes(df: pd.DataFrame, meta: dict) -> list[str]:
    return reference_kernels(df) + capped_rows(df, meta) + peak_distance(df, meta) + roofs_raised(meta)
