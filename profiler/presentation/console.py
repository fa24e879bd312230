"""Terminal presentation (rich tables). Nothing here measures or computes rates."""
from __future__ import annotations

import math
from contextlib import contextmanager

import pandas as pd
from rich.console import Console
from rich.table import Table


def _fmt(v, spec: str = ".3g", suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:{spec}}{suffix}"


def si(v, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "-"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}".strip()


def make_console() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=200)     # logs and pipes: do not fold ids at 80 columns


def print_results(df: pd.DataFrame, meta: dict, console: Console | None = None) -> None:
    console = console or make_console()
    energy = meta.get("energy", {})
    t = Table(title=f"hwprof {meta['suite']['name']} on {meta['device']} - energy: {energy.get('source', 'none')}")
    for col in ("configuration", "status", "time/call", "logical FLOP/s", "FLOP/J", "hef time", "hef energy",
                "rel error", "flags / reason"):
        t.add_column(col, overflow="fold")
    for r in df.to_dict("records"):
        ok = r["status"] == "ok"
        t.add_row(
            r["config_id"], r["status"],
            si(r["time_s_median"], "s") if ok else "-",
            si(r["logical_flops_per_s"], "FLOP/s") if ok else "-",
            si(r["logical_flops_per_j"], "FLOP/J") if ok else "-",
            _fmt(r["hef_time"], ".3g", "x"), _fmt(r["hef_energy"], ".3g", "x"), _fmt(r["rel_error"], ".2e"),
            (r["flags"] if ok else r["reason"]) or "",
        )
    console.print(t)
    if energy.get("source") == "estimate":
        console.print("[yellow]energy is an estimate (TDP x CPU utilisation), not a measurement[/]")
    from hwprof.analysis.summaries import contention, machine_state
    c = contention(df, meta)
    if c.any:
        console.print(f"[yellow]{c.contended} rows measured while other processes used the machine (contended), "
                      f"{c.stalled} stalled; {c.remeasured} had rounds measured again (busy or slow)[/]")
    state = machine_state(df, meta)
    if state.slow_rows or state.off_history:
        console.print(f"[yellow]{state.sentence()}[/]")


def print_warning(text: str) -> None:
    """A warning for people, on stderr, as the run goes."""
    Console(stderr=True).print(f"[yellow]hwprof: warning: {text}[/]")


def print_devices(surveys: list, console: Console | None = None, roofs: list | None = None) -> None:
    """`hwprof devices`: one table per device (measuring.inventory.survey's result), with its cached
    measured roofs (running.roofs.Roofs, or None) where given."""
    import torch
    console = console or make_console()
    if not torch.cuda.is_available():
        console.print(f"CUDA: not available to torch {torch.__version__}")
    for i, sv in enumerate(surveys):
        info = sv.info
        t = Table(title=f"{sv.device}: {info.name}", show_header=False)
        t.add_column("what")
        t.add_column("value", overflow="fold")
        t.add_row("memory", f"{info.total_memory_bytes / 2**30:.1f} GiB")
        if info.cpu and sv.device.type == "cpu":
            c = info.cpu
            if c.microarch:
                t.add_row("processor", f"{c.vendor} {c.microarch}".strip())
            t.add_row("cores / threads", f"{c.physical_cores} physical, {c.usable_cpus} usable, torch threads {c.threads}")
            t.add_row("max clock", f"{c.max_mhz:.0f} MHz ({c.max_mhz_source})" if c.max_mhz else c.max_mhz_source)
            t.add_row("ISA", " ".join(f for f in c.flags if f.startswith(("avx", "amx", "fma", "sve"))) or "-")
        for k, v in info.gpu.items():
            t.add_row(k, str(v))
        if info.peaks:
            for p, peak in info.peaks.items():
                t.add_row(f"peak {p}", f"{si(peak.flops_per_s, 'FLOP/s')}  [{peak.source}]")
        else:
            t.add_row("peaks", "none known (no MFU will be reported)")
        measured = roofs[i] if roofs else None
        if measured is None:
            t.add_row("measured roofs", "none cached for this machine yet (the next run measures them)")
        else:
            m = measured.memory
            t.add_row("memory roof", f"{si(m.bytes_per_s, 'B/s')} ({m.kernel}; measured {measured.measured})")
            for p, r in measured.compute.items():
                t.add_row(f"roof {p}", f"{si(r.flops_per_s, 'FLOP/s')} at {r.shape}" if r.flops_per_s
                          else f"none: {r.reason}")
        t.add_row("energy meter", sv.meter)
        for n in sv.skipped_meters:
            t.add_row("  skipped", n)
        console.print(t)


def print_comparison(cmp, console: Console | None = None) -> None:
    """`hwprof compare` (analysis.compare.Comparison)."""
    console = console or make_console()
    table = cmp.table
    if cmp.unlike:
        console.print(f"[yellow]runs measured under different conditions: {'; '.join(cmp.unlike)}[/]")
    if table["energy_estimated"].any():
        console.print("[yellow]FLOP/J ratios involve an estimated energy (TDP x utilisation), not a measurement[/]")
    t = Table(title="compare: ratios B / A (significant = CIs of the median times do not overlap)")
    for col in ("configuration", "status A/B", "time", "logical FLOP/s", "FLOP/J", "hef time", "rel error", "significant"):
        t.add_column(col, overflow="fold")
    for r in table.to_dict("records"):
        t.add_row(r["config_id"], f"{r['status_a']}/{r['status_b']}", _fmt(r["time_s_median_ratio"], ".4f"),
                  _fmt(r["logical_flops_per_s_ratio"], ".4f"), _fmt(r["logical_flops_per_j_ratio"], ".4f"),
                  _fmt(r["hef_time_ratio"], ".4f"), _fmt(r["rel_error_ratio"], ".3g"),
                  "[red]yes[/]" if r["significant"] else "no")
    console.print(t)


def print_validation(device: str, checks: list, console: Console | None = None) -> None:
    """`hwprof validate`: one row per check (analysis.validate's result)."""
    console = console or make_console()
    t = Table(title=f"hwprof validate on {device}")
    for col in ("check", "configuration", "hwprof", "peer", "peer tool", "ratio", "verdict", "note"):
        t.add_column(col, overflow="fold")
    for c in checks:
        fmt = (lambda v: "-" if v is None else f"{v:.6g}")
        color = {"pass": "green", "fail": "red", "skip": "yellow"}[c.verdict]
        t.add_row(c.kind, c.what, fmt(c.hwprof), fmt(c.peer), c.peer_name,
                  "-" if c.ratio is None else f"{c.ratio:.4f}", f"[{color}]{c.verdict}[/]", c.note)
    console.print(t)
    failed = sum(c.verdict == "fail" for c in checks)
    console.print(f"{len(checks) - failed} passed or skipped, {failed} failed")


@contextmanager
def progress_bar(total: int, completed: int):
    """A rich progress bar with ETA, moved by the runner's listener: by rounds within a block of passes,
    by rows as the block's rows are written."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwprof.running.runner import Listener
    columns = [TextColumn("[bold]{task.description:<48.48}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    rows = [completed]

    def row(r) -> None:
        rows[0] += 1
        progress.update(task, completed=rows[0], description=r.config_id)

    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("measuring", total=total, completed=completed)
        yield Listener(row=row, advance=lambda done, label: progress.update(task, completed=done, description=label))


def print_claims(checks: list, console: Console | None = None) -> None:
    """`hwprof claims` (analysis.claims.ClaimCheck rows)."""
    console = console or make_console()
    t = Table(title="Published claims, checked on this run", show_lines=True)
    for col in ("claim", "source", "measured here", "verdict"):
        t.add_column(col, overflow="fold")
    colour = {"holds": "green", "does not hold": "red"}
    for c in checks:
        t.add_row(c.claim, c.source, c.measured, f"[{colour.get(c.verdict, 'yellow')}]{c.verdict}[/]")
    console.print(t)
