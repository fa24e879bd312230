"""Terminal presentation (rich tables). Nothing here measures or computes rates."""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from hwprof.presentation.text import data, line, visible


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


def seconds(v) -> str:
    """A duration in the unit that keeps three significant digits readable (us, ms, s)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    for scale, unit in ((1e-6, "us"), (1e-3, "ms")):
        if abs(v) < scale * 1e3:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} s"


def make_console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(width=200, stderr=stderr)   # logs and pipes: do not fold ids


# The run table's columns by priority: what a 100-column terminal shows, and what only a wide one adds.
WIDE_TERMINAL = 140


def print_results(df: pd.DataFrame, meta: dict, console: Console | None = None) -> None:
    """The run's table, one line per configuration where the terminal allows: the id whole (it is what
    `compare` and `--resume` match on), rates and flags; why a row is unsupported or failed follows the
    table as numbered notes, one per distinct reason, instead of folding inside a narrow cell."""
    console = console or make_console()
    energy = meta.get("energy", {})
    wide = console.width >= WIDE_TERMINAL
    title = data(f"hwprof {meta['suite']['name']} on {meta['device']} - energy: {energy.get('source', 'none')}")
    t = Table(title=title, caption="logical FLOP/s and FLOP/J; hef: hidden-efficiency factor against the reference",
              box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("configuration", no_wrap=True)
    t.add_column("time/call", justify="right", no_wrap=True)
    t.add_column("FLOP/s", justify="right", no_wrap=True, min_width=6)
    if wide:
        t.add_column("FLOP/J", justify="right", no_wrap=True)
        t.add_column("hef energy", justify="right", no_wrap=True)
        t.add_column("rel error", justify="right", no_wrap=True)
    t.add_column("hef time" if wide else "hef", justify="right", no_wrap=True)
    t.add_column("flags / status", ratio=1, min_width=15)
    notes: dict[str, int] = {}
    for r in df.to_dict("records"):
        ok = r["status"] == "ok"
        # narrow: the unit once, in the header, so that "reference-impl" still fits in 100 columns
        cells = [data(r["config_id"]), seconds(r["time_s_median"]) if ok else "-",
                 si(r["logical_flops_per_s"], "FLOP/s" if wide else "") if ok else "-"]
        if wide:
            cells += [si(r["logical_flops_per_j"], "FLOP/J") if ok else "-", _fmt(r["hef_energy"], ".3g", "x"),
                      _fmt(r["rel_error"], ".2e")]
        cells.append(_fmt(r["hef_time"], ".3g", "x"))
        if ok:
            cells.append(data(", ".join(f for f in str(r["flags"] or "").split(",") if f)))
        else:
            n = notes.setdefault(str(r["reason"] or r["status"]), len(notes) + 1)
            cells.append(data(f"{r['status']} [{n}]", style="yellow" if r["status"] == "unsupported" else "red"))
        t.add_row(*cells)
    console.print(t)
    for reason, n in notes.items():
        console.print(line(f"[{n}] ", reason))
    from hwprof.analysis.notes import capped_rows, reference_kernels, roofs_raised
    for text in reference_kernels(df) + capped_rows(df, meta) + roofs_raised(meta):
        console.print(data(text, style="yellow"))
    if energy.get("source") == "estimate":
        console.print("energy is an estimate (TDP x CPU utilisation), not a measurement", style="yellow")
    from hwprof.analysis.summaries import contention, machine_state
    c = contention(df, meta)
    if c.any:
        console.print(f"{c.contended} rows measured while other processes used the machine (contended), "
                      f"{c.stalled} stalled; {c.remeasured} had rounds measured again (busy or slow)", style="yellow")
    state = machine_state(df, meta)
    if state.slow_rows or state.off_history:
        console.print(data(state.sentence(), style="yellow"))


def print_warning(text: str) -> None:
    """A warning for people, on stderr, as the run goes (its text may carry process names: data)."""
    make_console(stderr=True).print(data(f"hwprof: warning: {text}", style="yellow"))


def print_devices(surveys: list, console: Console | None = None, roofs: list | None = None) -> None:
    """`hwprof devices`: one table per device (measuring.inventory.survey's result), with its cached
    measured roofs (running.roofs.Roofs, or None) where given."""
    import torch
    console = console or make_console()
    if not torch.cuda.is_available():
        console.print(data(f"CUDA: not available to torch {torch.__version__}"))
    for i, sv in enumerate(surveys):
        info = sv.info
        t = Table(title=data(f"{sv.device}: {info.name}"), show_header=False)
        t.add_column("what")
        t.add_column("value", overflow="fold")

        def row(what, value) -> None:
            t.add_row(data(what), data(value))
        row("memory", f"{info.total_memory_bytes / 2**30:.1f} GiB")
        if info.cpu and sv.device.type == "cpu":
            c = info.cpu
            if c.microarch:
                row("processor", f"{c.vendor} {c.microarch}".strip())
            row("cores / threads", f"{c.physical_cores} physical, {c.usable_cpus} usable, torch threads {c.threads}")
            row("clock", f"{c.max_mhz:.0f} MHz ({c.max_mhz_source})" if c.max_mhz else
                f"{c.reported_mhz:.0f} MHz reported by /proc/cpuinfo (on a VM, its base clock); no cpufreq maximum")
            row("ISA", " ".join(f for f in c.flags if f.startswith(("avx", "amx", "fma", "sve"))) or "-")
        for k, v in info.gpu.items():
            row(k, v)
        if info.peaks:
            for p, peak in info.peaks.items():
                row(f"peak {p}", f"{si(peak.flops_per_s, 'FLOP/s')}  ({peak.source})")
        else:
            row("peaks", "none known (no MFU will be reported)")
        measured = roofs[i] if roofs else None
        if measured is None:
            row("measured roofs", "none cached for this machine yet (the next run measures them)")
        else:
            m = measured.memory
            row("memory roof", f"{si(m.bytes_per_s, 'B/s')} ({m.kernel}; measured {measured.measured})")
            for p, r in measured.compute.items():
                row(f"roof {p}", f"{si(r.flops_per_s, 'FLOP/s')} at {r.shape}" if r.flops_per_s else f"none: {r.reason}")
        row("energy meter", sv.meter)
        for n in sv.skipped_meters:
            row("  skipped", n)
        console.print(t)


def print_comparison(cmp, console: Console | None = None) -> None:
    """`hwprof compare` (analysis.compare.Comparison)."""
    console = console or make_console()
    table = cmp.table
    if cmp.unlike:
        console.print(data(f"runs measured under different conditions: {'; '.join(cmp.unlike)}", style="yellow"))
    if table["energy_estimated"].any():
        console.print("FLOP/J ratios involve an estimated energy (TDP x utilisation), not a measurement", style="yellow")
    t = Table(title="compare: ratios B / A (significant = CIs of the median times do not overlap)", box=box.SIMPLE_HEAD)
    t.add_column("configuration", no_wrap=True)
    for col in ("status A/B", "time", "logical FLOP/s", "FLOP/J", "hef time", "rel error", "significant"):
        t.add_column(col, justify="right")
    for r in table.to_dict("records"):
        t.add_row(data(r["config_id"]), data(f"{r['status_a']}/{r['status_b']}"), _fmt(r["time_s_median_ratio"], ".4f"),
                  _fmt(r["logical_flops_per_s_ratio"], ".4f"), _fmt(r["logical_flops_per_j_ratio"], ".4f"),
                  _fmt(r["hef_time_ratio"], ".4f"), _fmt(r["rel_error_ratio"], ".3g"),
                  data("yes", style="red") if r["significant"] else "no")
    console.print(t)


# a validate check's verdict: reported is measured but not judged (too few rounds, or a short decode step)
VERDICT_STYLE = {"pass": "green", "fail": "red", "reported": "cyan", "skip": "yellow"}


def print_validation(device: str, checks: list, console: Console | None = None) -> None:
    """`hwprof validate`: one row per check (analysis.validate's result)."""
    console = console or make_console()
    t = Table(title=data(f"hwprof validate on {device}"), box=box.SIMPLE_HEAD)
    for col in ("check", "configuration", "hwprof", "peer", "peer tool", "ratio", "verdict", "note"):
        t.add_column(col, overflow="fold")
    for c in checks:
        fmt = (lambda v: "-" if v is None else f"{v:.6g}")
        color = VERDICT_STYLE.get(c.verdict, "")
        t.add_row(data(c.kind), data(c.what), fmt(c.hwprof), fmt(c.peer), data(c.peer_name),
                  "-" if c.ratio is None else f"{c.ratio:.4f}", data(c.verdict, style=color), data(c.note))
    console.print(t)
    failed = sum(c.verdict == "fail" for c in checks)
    console.print(f"{len(checks) - failed} passed, reported or skipped, {failed} failed")


def print_model_validation(device: str, checks: list, console: Console | None = None) -> None:
    """`hwprof validate --model`: one row per (phase, precision) (analysis.validate_model's result)."""
    console = console or make_console()
    t = Table(title=data(f"hwprof validate --model on {device}: hwprof's step against transformers'"),
              box=box.SIMPLE_HEAD)
    for col in ("model", "phase", "precision", "hwprof / step", "transformers / step", "ratio", "verdict"):
        t.add_column(col, no_wrap=True)
    for c in checks:
        t.add_row(data(c.model), c.phase, data(c.precision), seconds(c.hwprof_s), seconds(c.transformers_s),
                  "-" if c.ratio is None else f"{c.ratio:.3f}", data(c.verdict, style=VERDICT_STYLE.get(c.verdict, "")))
    console.print(t)
    for c in checks:
        if c.note:
            console.print(line(f"{c.phase} {c.precision}: ", c.note))
    failed = sum(c.verdict == "fail" for c in checks)
    console.print(f"{len(checks) - failed} passed, reported or skipped, {failed} failed")


def _terminal_console() -> Console:
    """A console on a duplicate of the terminal's stdout: what it draws still reaches the terminal while
    the probe of a case redirects the process's stdout to read the libraries' call logs (measuring.impl)."""
    try:
        out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    except (OSError, ValueError, AttributeError):       # no real stdout (a notebook, a test's capture)
        return make_console()
    c = Console(file=out, force_terminal=sys.stdout.isatty() or None)
    return c


@contextmanager
def progress_bar(total: int, completed: int, label: str = "measuring"):
    """A rich progress bar with ETA, moved by a listener: by rounds within a block of passes, by rows as
    the block's rows are written (runner), or by checks (validate)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwprof.running.runner import Listener
    columns = [TextColumn("{task.description:<48.48}", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    rows = [completed]
    console = _terminal_console()

    def row(r) -> None:
        rows[0] += 1
        progress.update(task, completed=rows[0], description=visible(r.config_id))

    try:
        with Progress(*columns, transient=False, console=console) as progress:
            task = progress.add_task(label, total=total, completed=completed)
            yield Listener(row=row, advance=lambda done, text: progress.update(task, completed=done,
                                                                              description=visible(text)))
    finally:
        if console.file is not sys.stdout:
            console.file.close()


def print_claims(checks: list, console: Console | None = None) -> None:
    """`hwprof claims` (analysis.claims.ClaimCheck rows)."""
    console = console or make_console()
    t = Table(title="Published claims, checked on this run", show_lines=True)
    for col in ("claim", "source", "measured here", "verdict"):
        t.add_column(col, overflow="fold")
    colour = {"holds": "green", "does not hold": "red"}
    for c in checks:
        t.add_row(data(c.claim), data(c.source), data(c.measured), data(c.verdict, style=colour.get(c.verdict, "yellow")))
    console.print(t)
