"""Benchmark of the profiler itself: suite wall time, overhead outside measurement windows,
share of ok rows whose 95% CI meets the target, and peak memory of the process.

    python tests/benchmarks/bench_profiler.py                  # quick suite
    python tests/benchmarks/bench_profiler.py --suite standard
    python tests/benchmarks/bench_profiler.py --first-calls    # what skipping the probe on a rebuild costs
    python tests/benchmarks/bench_profiler.py --phases         # where the time outside windows goes

Targets (quick suite, 2-core machine): wall <= 60 s, overhead outside measurement windows <= 5% of the
runner's wall time. Also reported: rows whose time and hef intervals meet the CI target, contended rows.
Prints a table and writes bench.json into the run directory. Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from hwprof.analysis.summaries import ci_coverage
from hwprof.running.runner import execute
from hwprof.running.session import RunOptions

TARGETS = {"quick": {"wall_s": 60.0, "overhead": 0.05}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--first-calls", action="store_true",
                    help="per configuration of the suite, its first and second call after a rebuild against warm")
    ap.add_argument("--phases", action="store_true",
                    help="the run's time outside measurement windows split by phase (timers around them)")
    args = ap.parse_args(argv)
    if args.first_calls:
        return first_calls(args.suite)
    if args.phases:
        return phases(args.suite, args.out)
    t0 = time.perf_counter()
    result = execute(RunOptions(suite=args.suite, device=args.device, out_dir=args.out,
                                command=["bench_profiler.py", *sys.argv[1:]]), notify=print)
    wall_total = time.perf_counter() - t0          # includes imports of the run's modules, suite parsing
    meta, df = result.meta, result.results
    within, ok = ci_coverage(df, meta["suite"]["ci_target"])
    okdf = df[(df["status"] == "ok") & df["hef_time_ci_low"].notna() & (df["hef_time"] != 1.0)]
    hef_half = (okdf["hef_time_ci_high"] - okdf["hef_time_ci_low"]) / 2 / okdf["hef_time"]
    contended = int(df["flags"].fillna("").str.split(",").apply(lambda f: "contended" in f).sum())
    overhead = 1.0 - meta["measured_s"] / meta["wall_s"]
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    figures = {
        "suite": args.suite, "device": meta["device"], "configurations": len(df), "ok_rows": ok,
        "wall_s": round(wall_total, 2), "runner_wall_s": round(meta["wall_s"], 2),
        "measured_s": round(meta["measured_s"], 2), "overhead_share": round(overhead, 4),
        "ok_rows_within_ci_target": within, "ci_share": round(within / ok, 4) if ok else None,
        "hef_rows_within_ci_target": int((hef_half <= meta["suite"]["ci_target"]).sum()), "hef_rows": len(okdf),
        "hef_ci_halfwidth_median": round(float(hef_half.median()), 4) if len(okdf) else None,
        "contended_rows": contended,
        "peak_rss_mib": round(peak_rss_mib, 1), "run_dir": str(result.run_dir),
    }
    (result.run_dir / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    for k, v in figures.items():
        print(f"{k:28s} {v}")
    target = TARGETS.get(args.suite)
    if target:
        checks = [("wall_s", figures["wall_s"] <= target["wall_s"]),
                  ("overhead", overhead <= target["overhead"])]
        for name, ok_ in checks:
            print(f"target {name:20s} {'met' if ok_ else 'MISSED'} ({target[name]})")
    return 0


def phases(suite_name: str, out: Path) -> int:
    """One run with timers around the phases outside measurement windows: the first builds (probing call and
    error included), warm-up and batch choice, rebuilds between passes, the device warm-up, and the
    background import (how long it took, and how long the run then waited for it)."""
    import threading

    from hwprof.running import blocks, runner
    spent: dict[str, float] = {}

    def timed(module, name, label):
        fn = getattr(module, name)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
        setattr(module, name, wrapper)
    timed(blocks, "_build_family", "first builds, warm-ups and batches")
    timed(blocks, "prepare_arm", "  of which warm-ups and batches")
    timed(blocks, "_rebuild", "rebuilds between passes")
    timed(runner, "device_warmup", "device warm-up")
    timed(threading.Thread, "join", "waiting for the background import")
    timed(runner, "torchao_version", "background import of torchao (overlaps the quiet check)")
    timed(runner, "import_quantiles", "background import of scipy (overlaps the quiet check)")
    result = execute(RunOptions(suite=suite_name, device="cpu", out_dir=out, command=["bench_profiler.py", "--phases"]))
    meta = result.meta
    print(f"wall {meta['wall_s']:.2f} s, outside measurement windows {meta['wall_s'] - meta['measured_s']:.2f} s "
          f"({1 - meta['measured_s'] / meta['wall_s']:.2%}); contention {meta.get('contention')}")
    for label, seconds in spent.items():
        print(f"  {label:48s} {seconds:6.2f} s")
    return 0


def first_calls(suite_name: str, rebuilds: int = 5) -> int:
    """The first two calls of a case built again in fresh memory, without a probing call (as the passes do),
    against the median of 21 warm calls: the median over rebuilds of each ratio."""
    import statistics

    import torch

    from hwprof import kernels
    from hwprof.measuring.timing import CpuTimer
    from hwprof.running.suite import load_suite
    device, timer = torch.device("cpu"), CpuTimer()
    for spec in load_suite(suite_name, "cpu").specs:
        try:
            case, _ = kernels.build_case(spec, device, 0)
        except kernels.Unsupported:
            continue
        with case.context():
            for _ in range(5):
                case.run()
            warm = statistics.median(timer.time_batch(case.run, 1) for _ in range(21))
        firsts = []
        for _ in range(rebuilds):
            case = None
            case, _ = kernels.build_case(spec, device, 0, probe=False)
            with case.context():
                firsts.append((timer.time_batch(case.run, 1), timer.time_batch(case.run, 1)))
        print(f"{spec.config_id:50s} warm {warm * 1e6:10.1f} us   1st call x{statistics.median(f[0] for f in firsts) / warm:5.2f}"
              f"   2nd x{statistics.median(f[1] for f in firsts) / warm:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
