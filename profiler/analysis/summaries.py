"""Analysis over a run's results (pure functions of DataFrames): break-even densities, CI coverage."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from hwprof.kernels.schemes import compute_precision
from hwprof.running.efficiency import best_roof


@dataclass(frozen=True)
class BreakEven:
    shape: str
    precision: str
    pattern: str
    density: float | None          # where hef_time crosses 1 (log-interpolated); None if it never does
    note: str                      # plain words, e.g. "sparse faster below 0.23"


def break_even(df: pd.DataFrame) -> list[BreakEven]:
    """Density below which a sparse realisation beats the dense fp32 reference, per shape/precision/pattern."""
    ok = df[(df["kernel"] == "matmul") & (df["status"] == "ok") & df["hef_time"].notna()]
    out = []
    sparse = ok[~ok["sparsity"].isin(["dense"])]
    for (shape, precision, pattern), g in sparse.groupby(["shape", "precision", "sparsity"], sort=True):
        pts = sorted(zip(g["density"], g["hef_time"]), reverse=True)       # dense -> sparse
        out.append(BreakEven(shape, precision, pattern, *_crossing(pts)))
    return out


def _crossing(pts: list[tuple[float, float]]) -> tuple[float | None, str]:
    """Pure: where hef_time crosses 1 along (density, hef) points ordered dense -> sparse, and in words."""
    measured = (f"at the one density measured ({pts[0][0]:.3g})" if len(pts) == 1 else
                f"at every density measured ({pts[0][0]:.3g} down to {pts[-1][0]:.3g})")
    if all(h >= 1 for _, h in pts):
        return None, f"sparse faster {measured}"
    if all(h < 1 for _, h in pts):
        return None, f"dense faster {measured}"
    for (d0, h0), (d1, h1) in zip(pts, pts[1:]):
        if (h0 < 1) != (h1 < 1):
            # interpolate log(hef) linearly in log(density)
            x0, x1, y0, y1 = math.log(d0), math.log(d1), math.log(h0), math.log(h1)
            x = x0 + (0 - y0) * (x1 - x0) / (y1 - y0) if y1 != y0 else x0
            d = math.exp(x)
            side = "below" if h1 >= 1 else "above"
            return d, f"sparse faster {side} density {d:.3g}"
    return None, "no single crossing"


def ci_coverage(df: pd.DataFrame, target: float) -> tuple[int, int]:
    """(ok rows whose 95% CI half-width is within target, ok rows)."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return 0, 0
    half = (ok["time_s_ci_high"] - ok["time_s_ci_low"]) / 2 / ok["time_s_median"]
    flags = ok["flags"].fillna("")
    within = (half <= target) & ~flags.str.contains("few-repeats")
    return int(within.sum()), len(ok)


def has_flag(df: pd.DataFrame, flag: str) -> pd.Series:
    """Per row, whether its comma-separated flags include `flag` (a whole flag, not a substring)."""
    return df["flags"].fillna("").str.split(",").apply(lambda f: flag in f)


def rows_flagged(df: pd.DataFrame, flag: str) -> list[str]:
    """config_ids of the ok rows carrying `flag`, in run order."""
    return df.loc[(df["status"] == "ok") & has_flag(df, flag), "config_id"].tolist()


@dataclass(frozen=True)
class Contention:
    contended: int      # rows measured while other processes (or the hypervisor) used the machine
    stalled: int
    remeasured: int     # rows with rounds measured again because the machine was busy or slow during them

    @property
    def any(self) -> bool:
        return bool(self.contended or self.stalled or self.remeasured)


def contention(df: pd.DataFrame, meta: dict) -> Contention:
    return Contention(int(has_flag(df, "contended").sum()), int(has_flag(df, "stalled").sum()),
                      int((meta.get("contention") or {}).get("remeasured_rows", 0)))


@dataclass(frozen=True)
class MachineState:
    history_runs: int | None        # runs in this machine's history at the start; None: not consulted
    compared: int                   # blocks whose references were compared with it
    slow_rows: int                  # rows flagged slow-machine
    slowdown: float | None          # the largest block slowdown against the quiet state
    hef_compared: int = 0           # rows whose hef was compared with the configuration's earlier runs
    off_history: int = 0            # rows flagged off-history
    slow_rounds: int = 0            # rounds dropped because the reference ran slower than the quiet machine
    widened: int = 0                # rows whose hef interval includes their run-to-run spread
    run_sd: float | None = None     # the median of those rows' run-to-run sd of ln hef
    energy_widened: int = 0         # the same for hef_energy
    energy_run_sd: float | None = None

    def sentence(self) -> str:
        """What the history said, in words (the report and the terminal share them)."""
        if self.history_runs is None:
            return "The run was not compared with this machine's history (turned off)."
        if not self.compared and not self.hef_compared:
            return (f"No comparison with this machine's history yet: it holds {self.history_runs} earlier run(s), "
                    f"and a configuration needs 3; this run was added.")
        parts = []
        if self.compared:
            words = f"{self.slowdown:+.1%} against its quiet state (lower quartile of its last runs)"
            parts.append(f"This machine's references ran {words}: its host was busier than usual in ways the "
                         f"machine cannot see, and hef may differ from a quiet run by more than its interval; "
                         f"{self.slow_rows} rows are flagged slow-machine." if self.slow_rows else
                         f"This machine ran as usual: its references, by their median, {words}.")
        if self.slow_rounds:
            parts.append(f"{self.slow_rounds} rounds whose reference ran 5% or more slower than on the quiet machine "
                         f"were measured again.")
        if self.hef_compared:
            parts.append(f"{self.off_history} of {self.hef_compared} rows compared with this machine's last runs "
                         f"have a hef interval outside every earlier value (flagged off-history).")
        if self.widened:
            parts.append(f"{self.widened} rows' hef intervals also cover how much their hef moved between this "
                         f"machine's last runs (median sd {self.run_sd:.1%}).")
        if self.energy_widened:
            parts.append(f"{self.energy_widened} rows' hef_energy intervals likewise, by their last runs with the "
                         f"same meter (median sd {self.energy_run_sd:.1%}).")
        return " ".join(parts)


def machine_state(df: pd.DataFrame, meta: dict) -> MachineState:
    history = meta.get("machine_history")
    checks = meta.get("machine_state") or []
    slowdowns = [c["slowdown"] for c in checks if c.get("slowdown") is not None]
    rows = meta.get("history_checks") or {}
    sds, energy_sds = (df[c].dropna() if c in df else pd.Series(dtype=float)
                       for c in ("hef_time_run_sd", "hef_energy_run_sd"))
    return MachineState(history.get("runs") if history else None, len(slowdowns),
                        int(has_flag(df, "slow-machine").sum()), max(slowdowns) if slowdowns else None,
                        int(rows.get("compared_rows", 0)), int(has_flag(df, "off-history").sum()),
                        int((meta.get("contention") or {}).get("slow_rounds", 0)), len(sds),
                        float(sds.median()) if len(sds) else None, len(energy_sds),
                        float(energy_sds.median()) if len(energy_sds) else None)


@dataclass(frozen=True)
class RoofPlacement:
    config_id: str
    roof_frac: float
    bound: str                  # "compute" or "memory": which roof limits this row


def furthest_below_roof(df: pd.DataFrame, roofs: dict | None, n: int = 3) -> list[RoofPlacement]:
    """The ok rows with the smallest share of their measured roof (where the most is left on the table),
    and which roof binds them: memory where intensity x the memory roof is below the compute roof."""
    if "roof_frac" not in df:
        return []
    ok = df[(df["status"] == "ok") & df["roof_frac"].notna()]
    compute = (roofs or {}).get("compute") or {}
    rates = {p: (e or {}).get("flops_per_s") for p, e in compute.items()}
    out = []
    for r in ok.nsmallest(n, "roof_frac").to_dict("records"):
        c = best_roof(rates, compute_precision(r["precision"]))[0]
        bound = "memory" if c is None or r["roof_flops_per_s"] < c * (1 - 1e-9) else "compute"
        out.append(RoofPlacement(r["config_id"], r["roof_frac"], bound))
    return out


def above_roof(df: pd.DataFrame, tolerance: float = 1.05) -> list[str]:
    """Rows faster than their measured roof by more than `tolerance`: the roof was measured low."""
    if "roof_frac" not in df:
        return []
    ok = df[(df["status"] == "ok") & (df["roof_frac"] > tolerance)]
    return list(ok["config_id"])
