"""Fleet analysis: how one configuration's figures spread across devices of the same model, and which
device is slow. Pure functions of a fleet run's results and run.json."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import pandas as pd

OUTLIER_EXCESS = 0.05          # slower than the siblings' median by more than 5% (time or energy per call)


@dataclass(frozen=True)
class Spread:
    config_id: str
    device_name: str
    devices: int
    time_min: float
    time_median: float
    time_max: float
    time_cv: float               # coefficient of variation of the devices' median times
    energy_cv: float | None


@dataclass(frozen=True)
class Outlier:
    config_id: str
    device_uuid: str
    host: str
    metric: str                  # time | energy
    excess: float                # this device's figure / its siblings' median - 1
    beyond_ci: bool              # its interval lies wholly above the siblings' median (time only)


def device_names(meta: dict) -> dict[str, str]:
    return {n["device_uuid"]: n.get("device_name", "") for n in (meta.get("nodes") or {}).values()
            if n.get("device_uuid")}


def _ok(df: pd.DataFrame, meta: dict) -> pd.DataFrame:
    ok = df[(df["status"] == "ok") & df["device_uuid"].astype(str).ne("")].copy()
    names = device_names(meta)
    ok["device_name"] = [names.get(u, u) for u in ok["device_uuid"]]
    return ok


def _cv(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else None


def spread(df: pd.DataFrame, meta: dict) -> list[Spread]:
    out = []
    for (cid, name), g in _ok(df, meta).groupby(["config_id", "device_name"], sort=False):
        t = g["time_s_median"].astype(float).tolist()
        e = g["energy_j"].dropna().astype(float).tolist()
        out.append(Spread(cid, name, len(g), min(t), statistics.median(t), max(t), _cv(t) or 0.0,
                          _cv(e) if len(e) == len(g) else None))
    return out


def outliers(df: pd.DataFrame, meta: dict, excess: float = OUTLIER_EXCESS) -> list[Outlier]:
    """Devices slower (or costlier in joules) than the median of their siblings (the other devices of the
    same model, same configuration) by more than `excess`."""
    out = []
    for (cid, _name), g in _ok(df, meta).groupby(["config_id", "device_name"], sort=False):
        if len(g) < 2:
            continue
        recs = g.to_dict("records")
        for i, r in enumerate(recs):
            sib = [x for j, x in enumerate(recs) if j != i]
            for metric, col in (("time", "time_s_median"), ("energy", "energy_j")):
                others = [float(x[col]) for x in sib if pd.notna(x[col])]
                if not others or pd.isna(r[col]):
                    continue
                med = statistics.median(others)
                over = float(r[col]) / med - 1 if med > 0 else 0.0
                if over > excess:
                    beyond = metric == "time" and pd.notna(r.get("time_s_ci_low")) and float(r["time_s_ci_low"]) > med
                    out.append(Outlier(cid, r["device_uuid"], r.get("host", ""), metric, over, bool(beyond)))
    return out


def normalised(df: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Device x configuration: each device's median time over the fleet's median for that configuration."""
    ok = _ok(df, meta)
    if ok.empty:
        return pd.DataFrame()
    table = ok.pivot_table(index="device_uuid", columns="config_id", values="time_s_median", aggfunc="first")
    return table / table.median(axis=0)
