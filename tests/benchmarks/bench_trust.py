"""Benchmarks of the trust features, run alone on the machine (figures in the README):

    python tests/benchmarks/bench_trust.py repeat [N]  # N (2) quick runs back to back: do their hefs agree?
    python tests/benchmarks/bench_trust.py neighbour   # a busy neighbour process during a run: flagged?
    python tests/benchmarks/bench_trust.py processes [N]   # fp32 and w8a8 times in N (8) fresh processes
    python tests/benchmarks/bench_trust.py drift [S]       # the same two in one process for S (45) seconds

repeat: for ok non-reference rows of two back-to-back quick runs, the share whose hef_time lies inside the
other run's hef interval (target >= 90%) and the largest hef_time disagreement (target every row <= 15%); each
run's standing against this machine's history, and the same figures over the rows neither run flagged
slow-machine.
neighbour: a quiet quick run, a quick run with a 2-thread matmul loop started after a few seconds and stopped
15 s later, and a second quiet run; every row measured while the loop ran (by the clock) must be flagged
contended, or have been re-measured and agree with a quiet run within 10%. How far the two quiet runs differ
is printed beside it: the floor under which no detector can bring a row.
"""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pandas as pd

from hwprof.running.runner import Listener, execute
from hwprof.running.session import RunOptions

NEIGHBOUR = ("import torch, time\ntorch.set_num_threads(2)\na = torch.randn(1024, 1024)\n"
             "t0 = time.time()\nwhile time.time() - t0 < {seconds}:\n    a @ a\nprint(t0, time.time())\n")


def quick(out: Path, tag: str, on_row: Callable[[str, float, float], None] | None = None) -> pd.DataFrame:
    """A quick run; on_row hears each row's config_id and the span (epoch seconds) its rounds lie in: from
    the end of the previous block (rows arrive when their block ends) to its own arrival."""
    span = {"start": time.time(), "last_row": None}

    def advance(completed: float, label: str) -> None:     # a pass ended: a new block has begun if rows came
        if span["last_row"] is not None:
            span["start"], span["last_row"] = span["last_row"], None

    def row(r) -> None:
        span["last_row"] = time.time()
        on_row(r.config_id, span["start"], span["last_row"])

    @contextmanager
    def progress(total: int, done: int):
        yield Listener(row=row, advance=advance)
    r = execute(RunOptions(suite="quick", device="cpu", out_dir=out, command=["bench_trust.py", tag]),
                progress=progress if on_row else None, notify=print)
    df = r.results.set_index("config_id")
    df.attrs["run_dir"] = str(r.run_dir)
    df.attrs["meta"] = r.meta
    return df


def _pairs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    both = a.merge(b, left_index=True, right_index=True, suffixes=("_a", "_b"))
    ok = (both["status_a"] == "ok") & (both["status_b"] == "ok") & both["hef_time_a"].notna() & both["hef_time_b"].notna()
    both = both[ok & (both["hef_time_a"] != 1.0)]          # non-reference rows
    return both


def repeat(out: Path, runs: int = 2) -> int:
    """`runs` quick runs back to back; every pair of them compared."""
    done = [quick(out, f"repeat-{i}") for i in range(runs)]
    for i in range(runs):
        for j in range(i + 1, runs):
            _compare_pair(done[i], done[j])
    return 0


def _compare_pair(a: pd.DataFrame, b: pd.DataFrame) -> None:
    p = _pairs(a, b)
    a_in_b = (p["hef_time_a"] >= p["hef_time_ci_low_b"]) & (p["hef_time_a"] <= p["hef_time_ci_high_b"])
    b_in_a = (p["hef_time_b"] >= p["hef_time_ci_low_a"]) & (p["hef_time_b"] <= p["hef_time_ci_high_a"])
    inside = (a_in_b & b_in_a)
    diff = (p["hef_time_b"] / p["hef_time_a"] - 1).abs()
    print(f"runs: {a.attrs['run_dir']} ({a.attrs['meta']['wall_s']:.1f} s)  {b.attrs['run_dir']} "
          f"({b.attrs['meta']['wall_s']:.1f} s)")
    print(f"non-reference ok rows: {len(p)}; each inside the other's hef interval: {int(inside.sum())} "
          f"({inside.mean():.0%}, target >= 90%)")
    print(f"largest hef_time disagreement: {diff.max():.1%} ({diff.idxmax()}), target <= 15%; median {diff.median():.1%}")
    for tag in ("a", "b"):
        half = (p[f"hef_time_ci_high_{tag}"] - p[f"hef_time_ci_low_{tag}"]) / 2 / p[f"hef_time_{tag}"]
        sd = p.get(f"hef_time_run_sd_{tag}", pd.Series(dtype=float)).dropna()
        print(f"run {tag}: median hef half-width {half.median():.1%}; rows widened by their run-to-run spread: "
              f"{len(sd)}" + (f" (median sd {sd.median():.1%})" if len(sd) else ""))
    for tag, d in (("a", a), ("b", b)):
        states = d.attrs["meta"].get("machine_state") or []
        print(f"run {tag}: against this machine's history: "
              + (", ".join(f"{c['slowdown']:+.1%}{' (slow)' if c['slow'] else ''}" for c in states) or "no comparison"))
    slow = p["flags_a"].fillna("").str.contains("slow-machine") | p["flags_b"].fillna("").str.contains("slow-machine")
    if slow.any():
        rest = ~slow
        print(f"rows flagged slow-machine in either run: {int(slow.sum())}; of the {int(rest.sum())} others, each "
              f"inside the other's interval: {int((inside & rest).sum())}"
              + (f" ({(inside & rest).sum() / rest.sum():.0%}), largest disagreement {diff[rest].max():.1%}" if rest.any() else ""))
    for cid in p.index[~inside]:
        r = p.loc[cid]
        print(f"  outside: {cid}: {r['hef_time_a']:.4g} [{r['hef_time_ci_low_a']:.4g}, {r['hef_time_ci_high_a']:.4g}] vs "
              f"{r['hef_time_b']:.4g} [{r['hef_time_ci_low_b']:.4g}, {r['hef_time_ci_high_b']:.4g}]")


def neighbour(out: Path, start_after_s: float = 8.0, seconds: float = 15.0) -> int:
    """A quiet run, a run with a neighbour for part of it, a second quiet run. Which rows were measured while
    the neighbour ran comes from the clock, not from the detector under test: a block's rows arrive together
    when it ends, so each row's rounds lie between the previous arrival and its own, and a row whose span
    overlaps the neighbour's (as the neighbour itself reports it) counts as measured beside it."""
    quiet = quick(out, "quiet")
    code = NEIGHBOUR.format(seconds=seconds)
    launcher = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({start_after_s}); exec({code!r})"],
                                stdout=subprocess.PIPE, text=True)
    spans, t0 = {}, time.time()
    busy = quick(out, "neighbour", on_row=lambda cid, prev, now: spans.setdefault(cid, (prev, now)))
    n_start, n_end = map(float, launcher.communicate()[0].split())
    quiet2 = quick(out, "quiet-again")
    both = quiet.merge(busy, left_index=True, right_index=True, suffixes=("_q", "_n"))
    both = both.merge(quiet2[["status", "time_s_median"]].add_suffix("_q2"), left_index=True, right_index=True)
    both = both[(both["status_q"] == "ok") & (both["status_n"] == "ok") & (both["status_q2"] == "ok")]
    beside = pd.Series({cid: spans[cid][0] < n_end and spans[cid][1] > n_start for cid in both.index})
    flagged = both["flags_n"].fillna("").str.contains("contended")
    redone = both["rounds_remeasured_n"].fillna(0) > 0
    off_q, off_q2 = ((both["time_s_median_n"] / both[c] - 1).abs() for c in ("time_s_median_q", "time_s_median_q2"))
    agree = (off_q <= 0.10) | (off_q2 <= 0.10)
    floor = (both["time_s_median_q2"] / both["time_s_median_q"] - 1).abs()
    meta = busy.attrs["meta"]
    print(f"runs: quiet {quiet.attrs['run_dir']}  neighbour {busy.attrs['run_dir']}  quiet again "
          f"{quiet2.attrs['run_dir']}; the neighbour ran from {n_start - t0:.1f} s to {n_end - t0:.1f} s of a "
          f"{meta['wall_s']:.0f} s run")
    print(f"ok rows: {len(both)}; measured while the neighbour ran (by the clock): {int(beside.sum())}; of those, "
          f"flagged contended: {int((beside & flagged).sum())}, with rounds re-measured: {int((beside & redone).sum())}"
          f", with none re-measured: {int((beside & ~redone & ~flagged).sum())}; rows re-measured in all: "
          f"{(meta.get('contention') or {}).get('remeasured_rows')}")
    crit = beside & ~flagged
    print(f"target: of the {int(crit.sum())} unflagged rows measured beside it, within 10% of a quiet run: "
          f"{int((crit & agree).sum())} (of the quiet run before: {int((crit & (off_q <= 0.10)).sum())}, after: "
          f"{int((crit & (off_q2 <= 0.10)).sum())})")
    faster = crit & ~agree & (both["time_s_median_n"] < both[["time_s_median_q", "time_s_median_q2"]].min(axis=1))
    print(f"of those not within 10%: {int((crit & ~agree).sum())}, of which faster than both quiet runs (not slowed "
          f"by the neighbour; the host's state moved): {int(faster.sum())}")
    print(f"all unflagged rows within 10% of a quiet run: {int((~flagged & agree).sum())} of {int((~flagged).sum())}"
          f"; the two quiet runs themselves within 10%: {int((floor <= 0.10).sum())} of {len(both)} (largest "
          f"{floor.max():.1%}, {floor.idxmax()})")
    hefs = both[both["hef_time_q"] != 1.0]
    hef_off = (hefs["hef_time_n"] / hefs["hef_time_q"] - 1).abs()
    print(f"non-reference rows whose hef_time is within 10% of the quiet run's: {int((hef_off <= 0.10).sum())} of "
          f"{len(hefs)}" + (f" (largest {hef_off.max():.1%}, {hef_off.idxmax()})" if len(hefs) else ""))
    for cid in both.index[~flagged & ~agree]:
        r = both.loc[cid]
        print(f"  unflagged and off: {cid}{' (beside the neighbour)' if beside[cid] else ''}: "
              f"{r['time_s_median_n']:.4g} s vs quiet {r['time_s_median_q']:.4g} / {r['time_s_median_q2']:.4g} s, "
              f"rounds re-measured {r['rounds_remeasured_n']:.0f}, cpu_other_cores {r['cpu_other_cores_n']:.2f}")
    return 0


PROCESS = """
import statistics, time, torch
from hwprof import kernels
from hwprof.kernels.spec import MatmulSpec
cases = [kernels.build_case(MatmulSpec((512, 1024, 1024), p), torch.device("cpu"), 0)[0] for p in ("fp32", "w8a8")]
def median_us(f, n=30):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e6
for _ in range(5):
    for c in cases: c.run()
chunks = [[median_us(c.run) for c in cases] for _ in range(6)]
print(time.strftime("%H:%M:%S"), "fp32", [round(a) for a, _ in chunks], "w8a8", [round(b) for _, b in chunks], flush=True)
"""


def drift(seconds: float = 45.0) -> int:
    """The fp32 reference and the w8a8 linear at [512, 1024, 1024] alternating in one process, the median of
    20 calls each at a time, for `seconds`: whether a slow mode belongs to a process or to a stretch of time."""
    import statistics

    import torch

    from hwprof import kernels
    from hwprof.kernels.spec import MatmulSpec
    cases = [kernels.build_case(MatmulSpec((512, 1024, 1024), p), torch.device("cpu"), 0)[0] for p in ("fp32", "w8a8")]

    def median_ms(f, n=20):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1e3
    out, t0 = [], time.time()
    while time.time() - t0 < seconds:
        out.append((time.time() - t0, *[median_ms(c.run) for c in cases]))
    for t, a, b in out:
        print(f"{t:6.1f} s  fp32 {a:.2f} ms  w8a8 {b:.2f} ms  hef {a / b:.2f}")
    return 0


def processes(n: int = 8) -> int:
    """The fp32 reference and the w8a8 linear at [512, 1024, 1024], 6 chunks of 30 calls each, in n fresh
    processes one after another: how much a kernel moves between processes and seconds on this machine."""
    for _ in range(n):
        subprocess.run([sys.executable, "-c", PROCESS], check=True)
    return 0


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "repeat"
    out = Path("reports/bench")
    if what == "repeat":
        raise SystemExit(repeat(out, int(sys.argv[2]) if len(sys.argv) > 2 else 2))
    if what == "drift":
        raise SystemExit(drift(float(sys.argv[2]) if len(sys.argv) > 2 else 45.0))
    if what == "processes":
        raise SystemExit(processes(int(sys.argv[2]) if len(sys.argv) > 2 else 8))
    raise SystemExit(neighbour(out))
