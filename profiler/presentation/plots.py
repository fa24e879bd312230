"""Plots of a run (matplotlib, Agg). Each function takes data and returns a Figure, or None if there is
nothing to plot; saving and embedding are the report's business."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hwprof.analysis.summaries import break_even  # noqa: E402

PRECISION_COLORS = {"fp64": "#6c757d", "fp32": "#1f77b4", "tf32": "#17becf", "fp16": "#2ca02c", "bf16": "#98df8a",
                    "fp8_e4m3": "#d62728", "int8": "#9467bd", "w8a8": "#8c564b", "w8a16": "#e377c2",
                    "fp8-row": "#ff9896", "fp8w": "#bcbd22"}


def _finish_loglog(fig, ax, xlabel: str, ylabel: str, title: str, legend_size: int):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return fig


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def _label(r) -> str:
    parts = [r["kernel"], r["shape"], r["precision"]]
    if r["sparsity"] != "dense":
        parts.append(f"{r['sparsity']}@{r['density']:.3g}")
    if r["kernel"] == "attention":
        parts.append(r["backend"])
    if r["pass"] != "fwd":
        parts.append(r["pass"])
    return " ".join(str(p) for p in parts)


def hef_bars(df: pd.DataFrame):
    ok = _ok(df)
    ok = ok[ok["hef_time"].notna()]
    if ok.empty:
        return None
    ok = ok.sort_values(["kernel", "shape", "hef_time"])
    labels = [_label(r) for r in ok.to_dict("records")]
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.28 * len(ok) + 1)))
    y = range(len(ok))
    ax.barh([i + 0.2 for i in y], ok["hef_time"], height=0.4, label="time", color="#1f77b4")
    energy = ok["hef_energy"].fillna(0)
    if energy.gt(0).any():
        estimated = ok.loc[energy > 0, "energy_source"].eq("estimate").any()
        label = "energy (ESTIMATE: TDP x utilisation, not measured)" if estimated else "energy"
        ax.barh([i - 0.2 for i in y], energy.where(energy > 0), height=0.4, label=label, color="#ff7f0e")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlabel("hidden-efficiency factor (log; 1x = reference): matmul vs dense fp32; "
                  "attention vs fp32 math with the same mask", fontsize=8)
    ax.legend(loc="lower right")
    ax.set_title("Hidden-efficiency factor per configuration")
    fig.tight_layout()
    return fig


def _peak_value(peak) -> float:
    return peak["flops_per_s"] if isinstance(peak, dict) else peak.flops_per_s


def _spread_labels(ys: list[float], min_gap: float) -> list[float]:
    """Label heights (log10 units) at or above each point, at least min_gap apart, in the points' order
    of height: a greedy sweep that keeps every label next to its point and none on another."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = list(ys)
    last = -math.inf
    for i in order:
        out[i] = max(ys[i], last + min_gap)
        last = out[i]
    return out


def roofline(df: pd.DataFrame, peaks: dict, mem_bw: float | None, roofs: dict | None = None):
    """Achieved physical FLOP/s (the work done) against physical intensity, under the measured roofs
    (solid: min of each precision's compute roof and intensity x the memory roof) and the datasheet roofs
    where known (dashed). Every configuration is a numbered point; the numbers are listed beside the plot."""
    ok = _ok(df)
    # log axes: rows that do arithmetic only (an op that only moves data, a hollow step, have none to place)
    ok = ok[(ok["bytes_moved"] > 0) & (ok["physical_flops_per_s"] > 0) & (ok["physical_flops"] > 0)]
    if ok.empty:
        return None
    ok = ok.assign(intensity=ok["physical_flops"] / ok["bytes_moved"]).sort_values("physical_flops_per_s")
    fig, (ax, key) = plt.subplots(1, 2, figsize=(12, 6), gridspec_kw={"width_ratios": [3, 2]})
    for (kernel, prec), g in ok.groupby(["kernel", "precision"]):
        ax.scatter(g["intensity"], g["physical_flops_per_s"], label=f"{kernel} {prec}", zorder=3,
                   marker="o" if kernel == "matmul" else "^", color=PRECISION_COLORS.get(prec))
    x = np.logspace(np.log10(ok["intensity"].min() / 3), np.log10(ok["intensity"].max() * 3), 200)
    memory = (roofs or {}).get("memory", {}).get("bytes_per_s")
    for prec, c in ((roofs or {}).get("compute") or {}).items():
        if c.get("flops_per_s") and prec in set(ok["precision"]):
            y = np.minimum(c["flops_per_s"], x * memory) if memory else np.full_like(x, c["flops_per_s"])
            ax.plot(x, y, lw=1.4, color=PRECISION_COLORS.get(prec, "grey"), label=f"measured roof {prec}")
    for prec, peak in (peaks or {}).items():
        if prec in set(ok["precision"]):
            f = _peak_value(peak)
            y = np.minimum(f, x * mem_bw) if mem_bw else np.full_like(x, f)
            ax.plot(x, y, ls="--", lw=0.9, color=PRECISION_COLORS.get(prec, "grey"), label=f"datasheet {prec}")
    records = ok.to_dict("records")
    ys = np.log10(ok["physical_flops_per_s"].to_numpy())
    gap = max(0.05, (ys.max() - ys.min()) / 45)
    for i, (r, ly) in enumerate(zip(records, _spread_labels(list(ys), gap)), start=1):
        ax.annotate(str(i), (r["intensity"], r["physical_flops_per_s"]), xytext=(r["intensity"] * 1.08, 10 ** ly),
                    fontsize=6, va="center", arrowprops={"arrowstyle": "-", "lw": 0.3, "color": "grey"})
    key.axis("off")
    lines = [f"{i:>2}  {_label(r)}" + (f"  ({r['roof_frac']:.0%} of roof)" if pd.notna(r.get("roof_frac")) else "")
             for i, r in enumerate(records, start=1)]
    key.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=6)
    title = "Roofline" + ("" if roofs or peaks else " (no roof measured or known for this device)")
    return _finish_loglog(fig, ax, "physical intensity (FLOP done per byte of dense operands)",
                          "achieved physical FLOP/s", title, 6)


def accuracy_vs_efficiency(df: pd.DataFrame):
    ok = _ok(df)
    ok = ok[ok["hef_time"].notna() & (ok["rel_error"] > 0) & (ok["hef_time"] > 0) &
            (ok["sparsity"].isin(["dense", "causal"]) | ok["sparsity"].str.startswith("window"))]
    if ok.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    floor = 1e-17     # fp64 against an fp64 reference can be exactly 0
    for prec, g in ok.groupby("precision"):
        scheme = g["backend"].eq("torchao").all()       # quantization schemes: squares, beside the plain dtypes
        ax.scatter(g["hef_time"], g["rel_error"].clip(lower=floor), label=f"{prec} (scheme)" if scheme else prec,
                   color=PRECISION_COLORS.get(prec), s=40, marker="s" if scheme else "o")
        for r in g.to_dict("records"):
            ax.annotate(f"{r['kernel'][0]} {r['shape']}", (r["hef_time"], max(r["rel_error"], floor)),
                        fontsize=6, alpha=0.7)
    ax.axvline(1.0, color="k", lw=0.8)
    return _finish_loglog(fig, ax, "hef_time (speed vs fp32 reference)", "relative error vs fp64 (Frobenius)",
                          "What each precision costs (error) and buys (speed)", 8)


def sparsity_curve(df: pd.DataFrame):
    ok = _ok(df)
    mm = ok[(ok["kernel"] == "matmul") & ok["hef_time"].notna()]
    sparse = mm[mm["sparsity"] != "dense"]
    if sparse.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for (shape, prec, pattern), g in sparse.groupby(["shape", "precision", "sparsity"]):
        dense = mm[(mm["shape"] == shape) & (mm["precision"] == prec) & (mm["sparsity"] == "dense")]
        g = pd.concat([g, dense]).sort_values("density")
        ax.plot(g["density"], g["hef_time"], marker="o", label=f"{pattern} {prec} {shape}")
    for be in break_even(df):
        if be.density is not None:
            ax.axvline(be.density, ls=":", color="grey")
            ax.annotate(f"break-even {be.density:.2g}", (be.density, 1.0), fontsize=7, rotation=90, va="bottom")
    ax.axhline(1.0, color="k", lw=1)
    return _finish_loglog(fig, ax, "density (share of the dense work kept)", "hef_time vs dense fp32",
                          "Sparsity: does pruning buy speed here?", 7)


def forecast_curves(forecast: dict):
    series = forecast.get("trajectories") or []
    if not series:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    with_loss = "loss" in series[0]
    for s in series:
        ax1.plot(s["years"], s["cumulative_logical_flops"], label=s["label"])
        ax2.plot(s["years"], s["loss"] if with_loss else s["excess_loss_ratio_vs_reference"], label=s["label"])
    ax1.set_yscale("log")
    ax1.set_xlabel("years")
    ax1.set_ylabel("cumulative logical FLOPs within the power budget")
    ax2.set_xlabel("years")
    if with_loss:
        ax2.set_ylabel("compute-optimal loss (scaling law)")
    else:
        ax2.set_ylabel("excess-loss ratio vs the reference's first year")
        target = forecast.get("scenario", {}).get("target_ratio")
        if target:
            ax2.axhline(target, ls="--", color="grey")
    ax2.legend(fontsize=7)
    title = f"Forecast: {forecast.get('scenario', {}).get('doublings_per_year')} efficiency doublings/year"
    if forecast.get("energy_source") == "estimate":
        title += " - E0 from an ESTIMATED energy (TDP x utilisation)"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def fleet_heatmap(table: pd.DataFrame):
    """Device x configuration, each cell the device's time over the fleet median (1 = the median device)."""
    if table is None or table.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * table.shape[1] + 3), max(2.5, 0.4 * table.shape[0] + 1.5)))
    spread = max(0.02, float(abs(table - 1).max().max()))
    im = ax.imshow(table.to_numpy(dtype=float), cmap="RdBu_r", vmin=1 - spread, vmax=1 + spread, aspect="auto")
    ax.set_yticks(range(table.shape[0]), [str(u)[-28:] for u in table.index], fontsize=7)
    ax.set_xticks(range(table.shape[1]), list(table.columns), fontsize=6, rotation=60, ha="right")
    fig.colorbar(im, ax=ax, label="time / fleet median (red: slower)")
    ax.set_title("Fleet: each device against the fleet median, per configuration")
    fig.tight_layout()
    return fig


GROUP_ORDER = ["projections", "attention", "mlp", "lm_head", "norms", "activation", "rotary", "residual",
               "embedding", "kv_cache", "head_merge", "glue", "unexplained"]


def token_breakdown(table: pd.DataFrame):
    """Where a token's time goes, per model and precision: prefill beside decode, each bar the measured
    step split by component group (share of the step), with what no kernel explains on top."""
    if table is None or table.empty:
        return None
    bars = list(table.groupby(["model", "precision", "sparsity", "phase"], sort=False))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(bars) + 2), 4.5))
    cmap = plt.get_cmap("tab20")
    bottoms = [0.0] * len(bars)
    for gi, group in enumerate(GROUP_ORDER):
        shares = [max(0.0, float(g.loc[g["group"] == group, "share_of_step"].sum())) for _, g in bars]
        if not any(shares):
            continue
        ax.bar(range(len(bars)), shares, bottom=bottoms, label=group, color="#bbbbbb" if group == "unexplained"
               else cmap(gi), hatch="//" if group == "unexplained" else None, edgecolor="white", linewidth=0.5)
        bottoms = [b + v for b, v in zip(bottoms, shares)]
    for i, (key, g) in enumerate(bars):
        per_token = float(g["time_s_per_token"].sum())
        ax.text(i, max(bottoms[i], 1.0) + 0.02, f"{per_token * 1e3:.3g} ms\nper token", ha="center", fontsize=7)
    ax.set_ylim(0, max(1.0, *bottoms) + 0.15)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([f"{m}\n{p} {sp if sp != 'dense' else ''}\n{ph}" for (m, p, sp, ph), _ in bars], fontsize=7)
    ax.set_ylabel("share of the measured step")
    ax.set_title("Where a token's time goes (measured step, split by its kernels)")
    ax.legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def save(fig, path) -> bool:
    if fig is None:
        return False
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
