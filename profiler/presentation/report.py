"""report.html (self-contained: inline styles, embedded images, no network) and report.md for a run."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from hwprof.presentation import plots
from hwprof.analysis import fleet
from hwprof.analysis.breakdown import breakdown_table
from hwprof.analysis.notes import notes
from hwprof.presentation.sections import sections
from hwprof.analysis.summaries import (above_roof, break_even, ci_coverage, contention, furthest_below_roof,
                                      machine_state, rows_flagged)
from hwprof.measuring.rounds import BIMODAL_GAP
from hwprof.presentation.console import si
from hwprof.presentation.text import visible
from hwprof.running.efficiency import widened_roofs
from hwprof.running.rundir import atomic_write_text, read_run_json
from hwprof.running.results import read_results

TABLE_COLUMNS = ["config_id", "status", "time_s_median", "time_rel_iqr", "repeats", "logical_flops_per_s",
                 "physical_flops_per_s", "logical_flops_per_j", "power_w", "hef_time", "hef_time_ci_low",
                 "hef_time_ci_high", "hef_energy", "doublings_time", "mfu", "roof_frac", "rel_error", "pruning_error",
                 "cpu_other_cores", "energy_source", "flags", "reason"]

PLOTS = [
    ("hef.png", "Hidden-efficiency factor (time and energy) per configuration"),
    ("roofline.png", "Roofline: achieved physical FLOP/s under the measured roofs (solid) and datasheet roofs (dashed)"),
    ("accuracy.png", "Accuracy against efficiency: what each precision costs and buys"),
    ("sparsity.png", "Sparsity: hef_time against density, with the break-even point"),
    ("forecast.png", "Forecast: logical compute and excess loss over time"),
    ("fleet.png", "Fleet: each device's time over the fleet median, per configuration"),
    ("tokens.png", "Models: where a token's time goes, prefill beside decode (model_breakdown.csv)"),
]

ENERGY_WORDS = {
    "nvml-counter": "measured with the GPU's NVML total-energy counter (board energy, idle draw included)",
    "nvml-sampled": "measured by sampling GPU board power through NVML every ~10 ms and integrating",
    "rapl": "measured with the CPU's RAPL package energy counters (package energy, idle draw included)",
    "estimate": "ESTIMATED as TDP x measured CPU utilisation, because no energy counter is readable here; "
                "energy figures and hef_energy are therefore not measurements",
    "none": "not measured (no energy meter); energy columns are empty",
}


def render_plots(run_dir: Path, df: pd.DataFrame, meta: dict) -> dict[str, Path]:
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    mem_bw = (meta.get("device_description") or {}).get("gpu", {}).get("mem_bw_bytes_per_s")
    forecast = _read_json(run_dir / "forecast.json")
    figs = {
        "hef.png": plots.hef_bars(df),
        "roofline.png": plots.roofline(df, meta.get("peak_table", {}), mem_bw, meta.get("roofs")),
        "accuracy.png": plots.accuracy_vs_efficiency(df),
        "sparsity.png": plots.sparsity_curve(df),
        "forecast.png": plots.forecast_curves(forecast) if forecast else None,
        "fleet.png": plots.fleet_heatmap(fleet.normalised(df, meta)) if meta.get("fleet") else None,
        "tokens.png": plots.token_breakdown(breakdown_table(df, meta)),
    }
    written = {}
    for name, fig in figs.items():
        if plots.save(fig, out / name):
            written[name] = out / name
    return written


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _cell(col: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if col in ("logical_flops_per_s", "physical_flops_per_s"):
        return si(v, "FLOP/s")
    if col == "logical_flops_per_j":
        return si(v, "FLOP/J")
    if col == "time_s_median":
        return si(v, "s")
    if col == "power_w":
        return f"{v:.3g} W"
    if col == "repeats":
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def machine_lines(meta: dict) -> list[str]:
    lines = []
    desc = meta.get("device_description") or {}
    lines.append(f"Device: {meta.get('device')} - {desc.get('name', '')}")
    cpu = desc.get("cpu") or {}
    if cpu:
        ident = f", {cpu['microarch']}" if cpu.get("microarch") else ""
        lines.append(f"CPU: {cpu.get('model')}{ident} ({cpu.get('physical_cores')} cores, {cpu.get('threads')} torch threads, "
                     f"ISA {' '.join(cpu.get('flags', []))})")
    gpu = desc.get("gpu") or {}
    if gpu:
        lines.append(f"GPU: {gpu.get('name')} sm_{gpu.get('capability')}, {gpu.get('multiprocessors')} SMs, "
                     f"{(gpu.get('memory_bytes') or 0) / 2**30:.0f} GiB, driver {gpu.get('driver', '?')}, CUDA {gpu.get('cuda')}")
    lines.append(f"Software: Python {meta.get('python')}, torch {meta.get('torch')}, hwprof {meta.get('version')}; "
                 f"host {meta.get('host')}; {meta.get('os')}")
    energy = meta.get("energy", {})
    source = energy.get("source", "none")
    lines.append(f"Energy: {ENERGY_WORDS.get(source, source)}. Meter: {energy.get('description', '')}.")
    for note in energy.get("fallbacks", []):
        lines.append(f"Energy fallback: {note}")
    idle = meta.get("idle_power_w") or {}
    for src, w in idle.items():
        if w is not None:
            lines.append(f"Idle power ({src}): {w:.3g} W, measured once before the first configuration")
    for qc in meta.get("quiet_checks", []):
        top = ", ".join(f"{n['name']} ({n['cores']:.2f} cores)" for n in qc.get("top", [])) or "none named"
        lines.append(f"Quiet check before the run ({qc.get('seconds', 0):.1f} s): other processes used "
                     f"{qc.get('other_cores', 0):.2f} cores, steal {qc.get('steal_frac', 0):.0%} - "
                     f"{'quiet' if qc.get('quiet') else 'NOT quiet: ' + top}")
    pol = meta.get("policy", {})
    lines.append(f"Timing: {meta.get('timer')}; each configuration alternates with its reference in at least "
                 f"{pol.get('rounds')} rounds of {pol.get('round_s')} s; hef is the median of the per-round ratios; "
                 f"intervals are distribution-free over rounds ({pol.get('confidence', 0.975) * 100:g}% nominal, "
                 f">= 95% under sequential stopping); stop when within {pol.get('ci_target', 0) * 100:g}% or after "
                 f"{pol.get('budget_s')} s")
    peaks = meta.get("peak_table") or {}
    if peaks:
        first = next(iter(peaks.values()))
        lines.append(f"Peaks for MFU: {first.get('source')}")
    else:
        lines.append("Peaks for MFU: none known for this device, so MFU is left empty")
    roofs = meta.get("roofs")
    if roofs:
        m = roofs["memory"]
        rates = ", ".join(f"{p} {si(c['flops_per_s'], 'FLOP/s')} ({c['shape']})"
                          for p, c in roofs["compute"].items() if c.get("flops_per_s"))
        lines.append(f"Measured roofs ({'cached, ' if roofs.get('cached') else ''}measured {roofs.get('measured')}): "
                     f"memory {si(m['bytes_per_s'], 'B/s')} ({m['method']}); compute, best dense matmul over a "
                     f"size sweep: {rates or 'none'}")
        widened = {p: v for p, v in widened_roofs({p: c.get("flops_per_s") for p, c in roofs["compute"].items()}).items()
                   if roofs["compute"][p].get("flops_per_s")}      # a precision with no kernel here has no rows
        if widened:
            lines.append("Held to a wider precision's roof, above their own (their values are exact in it, and a "
                         "kernel may compute them there): " + "; ".join(
                             f"{p} rows to the {via} roof {si(rate, 'FLOP/s')}" for p, (via, rate) in widened.items()))
    else:
        lines.append("Measured roofs: not measured for this run (roof_flops_per_s and roof_frac are empty)")
    lines.append(f"Run: {meta.get('status')}, started {meta.get('started')}, ended {meta.get('ended')}, "
                 f"wall {meta.get('wall_s', 0):.1f} s, of which {meta.get('measured_s', 0):.1f} s inside measurement windows")
    return lines


def findings(df: pd.DataFrame, meta: dict) -> list[str]:
    lines = []
    target = meta.get("policy", {}).get("ci_target", 0.02)
    within, ok = ci_coverage(df, target)
    counts = df["status"].value_counts().to_dict()
    lines.append(f"{len(df)} configurations: {counts.get('ok', 0)} ok, {counts.get('unsupported', 0)} unsupported, "
                 f"{counts.get('error', 0)} error; {within} of {ok} ok rows have a 95% CI within {target * 100:g}%.")
    c = contention(df, meta)
    if c.any:
        lines.append(f"{c.contended} rows were measured while other processes used the machine (flag contended) "
                     f"and {c.stalled} stalled: their numbers say more about the neighbour than the kernel. "
                     f"{c.remeasured} rows had rounds measured again because the machine was busy or slow during them "
                     f"(rounds_remeasured).")
    else:
        lines.append("No row was measured beside another busy process (no contended or stalled flags).")
    lines.append(machine_state(df, meta).sentence())
    two = rows_flagged(df, "bimodal")
    if two:
        lines.append(f"{len(two)} rows ran at two speeds from round to round (flag bimodal: their rounds split by a "
                     f"gap of {BIMODAL_GAP:.0%} or more): {', '.join(two[:3])}{' ...' if len(two) > 3 else ''}. Such "
                     f"a row's median lands on either speed, so another run may differ from it by up to the gap.")
    good = df[(df["status"] == "ok") & df["hef_time"].notna()]
    if not good.empty:
        best = good.loc[good["hef_time"].idxmax()]
        lines.append(f"Largest hef_time: {best['config_id']} at {best['hef_time']:.3g}x "
                     f"({best['doublings_time']:.2f} doublings), rel_error {best['rel_error']:.2g}.")
    for be in break_even(df):
        lines.append(f"Break-even {be.pattern} {be.precision} {be.shape}: {be.note}.")
    below = furthest_below_roof(df, meta.get("roofs"))
    if below:
        lines.append("Furthest below their measured roof: " + "; ".join(
            f"{b.config_id} at {b.roof_frac:.0%} ({b.bound}-bound)" for b in below) + ".")
    over = above_roof(df)
    if over:
        lines.append(f"{len(over)} rows ran faster than their measured roof by more than 5% ({', '.join(over[:3])}"
                     f"{'...' if len(over) > 3 else ''}). A dense matmul row that beats its compute roof beyond its "
                     "interval raises it; these are within their interval of it, or memory-bound rows whose operands "
                     "stayed in cache, which the memory roof (measured beyond the last-level cache) does not cover.")
    return lines + notes(df, meta)


def render_report(run_dir: Path) -> list[Path]:
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    df = read_results(run_dir / "results.csv")
    images = render_plots(run_dir, df, meta)
    from hwprof.running.journal import kept_rounds
    extra = sections(df, meta, kept_rounds(run_dir))
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    atomic_write_text(html_path, to_html(df, meta, images, extra))
    atomic_write_text(md_path, to_markdown(df, meta, images, extra))
    return [html_path, md_path, *images.values()]


def to_markdown(df: pd.DataFrame, meta: dict, images: dict[str, Path], extra: list | None = None) -> str:
    name = meta.get("suite", {}).get("name", "")
    out = [f"# hwprof report: {_md_escape(name)} on {_md_escape(meta.get('device'))}", ""]
    out += ["## Machine and method", ""] + [f"- {_md_escape(line)}" for line in machine_lines(meta)] + [""]
    out += ["## Findings", ""] + [f"- {_md_escape(line)}" for line in findings(df, meta)] + [""]
    for fname, title in PLOTS:
        if fname in images:
            out += [f"### {title}", "", f"![{title}](plots/{fname})", ""]
    table = df[[c for c in TABLE_COLUMNS if c in df.columns]].copy()
    for col in table.columns:
        table[col] = [_md_escape(_cell(col, v)) for v in table[col]]
    for title, text, frame in extra or []:
        cells = frame.map(lambda v: _md_escape(_cell("", v)))
        out += [f"## {title}", "", _md_escape(text), "", cells.to_markdown(index=False), ""]
    out += ["## Configurations", "", table.to_markdown(index=False), ""]
    return "\n".join(out)


def _md_escape(text: str) -> str:
    """A data string in Markdown: control characters written out (a newline would split a heading or a
    table row), HTML and table pipes escaped."""
    return html.escape(visible(text), quote=False).replace("|", "\\|")


def to_html(df: pd.DataFrame, meta: dict, images: dict[str, Path], extra: list | None = None) -> str:
    esc = lambda text: html.escape(visible(text))   # noqa: E731  (data: control characters shown)
    name = meta.get("suite", {}).get("name", "")
    head = [f"<h1>hwprof report: {esc(str(name))} on {esc(str(meta.get('device')))}</h1>"]
    head.append("<h2>Machine and method</h2><ul>" + "".join(f"<li>{esc(l)}</li>" for l in machine_lines(meta)) + "</ul>")
    head.append("<h2>Findings</h2><ul>" + "".join(f"<li>{esc(l)}</li>" for l in findings(df, meta)) + "</ul>")
    figs = []
    for fname, title in PLOTS:
        if fname in images:
            data = base64.b64encode(images[fname].read_bytes()).decode()
            figs.append(f"<figure><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{esc(title)}</figcaption></figure>")
    for title, text, frame in extra or []:
        head.append(f"<h2>{esc(title)}</h2><p>{esc(text)}</p><table><thead><tr>"
                    + "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns) + "</tr></thead><tbody>"
                    + "".join("<tr>" + "".join(f"<td>{esc(_cell('', v))}</td>" for v in r) + "</tr>"
                              for r in frame.itertuples(index=False)) + "</tbody></table>")
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    rows = []
    for r in df.to_dict("records"):
        cells = []
        for c in cols:
            v = r.get(c)
            key = "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
            cells.append(f"<td data-v='{esc(str(key))}'>{esc(_cell(c, v))}</td>")
        rows.append(f"<tr class='{esc(str(r['status']))}'>" + "".join(cells) + "</tr>")
    table = ("<h2>Configurations</h2><p>Click a column header to sort.</p><table id='t'><thead><tr>"
             + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hwprof report: {esc(str(name))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
th {{ background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }}
tr.unsupported td {{ color: #888; }} tr.error td {{ color: #b00; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
{''.join(head)}
<h2>Plots</h2>{''.join(figs) or '<p>No plots: no configuration completed.</p>'}
{table}
<script>
document.querySelectorAll('#t th').forEach(function (th, i) {{
  th.addEventListener('click', function () {{
    var body = document.querySelector('#t tbody');
    var rows = Array.from(body.rows);
    var asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    rows.sort(function (a, b) {{
      var x = a.cells[i].dataset.v, y = b.cells[i].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? r : -r;
    }});
    rows.forEach(function (r) {{ body.appendChild(r); }});
  }});
}});
</script>
</body></html>
"""
