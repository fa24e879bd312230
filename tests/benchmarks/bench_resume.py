"""Benchmark of durable rounds: the quick suite run whole, then killed with SIGKILL partway and resumed, side
by side in one sitting.

    python tests/benchmarks/bench_resume.py                 # killed 30 s in
    python tests/benchmarks/bench_resume.py --kill-at 12    # ... or at another moment

Target: the resume takes at most the uninterrupted run's wall time less 20 s (killed 30 s in, a run loses at
most the pass in flight, so most of what it measured is kept), and gives the same configurations, no
duplicate ids and rows of the same columns and statuses as the uninterrupted run. Each run is a separate
`hwprof run` process with the machine's roofs cached and no history (the second run must not be judged
against the first). Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hwprof.running.results import read_results

SAVED_S = 20.0               # the resume must be this much shorter than the uninterrupted run


def hwprof(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "hwprof", "run", *args, "--quiet", "--no-report", "--no-history"]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def only_dir(out: Path) -> Path:
    [d] = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--kill-at", type=float, default=30.0, help="seconds into the run to SIGKILL it (default 30)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hwprof-bench-resume-"))
    subprocess.run(hwprof(["--suite", args.suite, "--out", str(base / "warm")]), check=True,
                   stdout=subprocess.DEVNULL)               # the roofs cached, so both runs below start alike

    whole_s = timed(hwprof(["--suite", args.suite, "--out", str(base / "whole")]))
    whole = read_results(only_dir(base / "whole") / "results.csv")

    proc = subprocess.Popen(hwprof(["--suite", args.suite, "--out", str(base / "killed")]),
                            stdout=subprocess.DEVNULL, start_new_session=True)
    time.sleep(args.kill_at)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = only_dir(base / "killed")
    rows_at_kill = len(read_results(run_dir / "results.csv"))
    records_at_kill = sum(1 for line in (run_dir / "rounds.jsonl").read_text().splitlines()
                          if '"type":"round"' in line) if (run_dir / "rounds.jsonl").exists() else 0
    resume_s = timed([sys.executable, "-m", "hwprof", "run", "--resume", str(run_dir), "--quiet", "--no-report"])
    resumed = read_results(run_dir / "results.csv")

    same_ids = sorted(resumed["config_id"]) == sorted(whole["config_id"])
    same_form = list(resumed.columns) == list(whole.columns) and (
        resumed.set_index("config_id")["status"].sort_index().equals(whole.set_index("config_id")["status"].sort_index()))
    out = {"suite": args.suite, "kill_at_s": args.kill_at, "uninterrupted_s": round(whole_s, 1),
           "resume_s": round(resume_s, 1), "saved_s": round(whole_s - resume_s, 1), "target_saved_s": SAVED_S,
           "rows_at_kill": rows_at_kill, "rounds_at_kill": records_at_kill,
           "same_configurations": same_ids, "duplicate_ids": int(resumed["config_id"].duplicated().sum()),
           "same_columns_and_statuses": bool(same_form), "run_dir": str(run_dir)}
    out["met"] = bool(out["saved_s"] >= SAVED_S and same_ids and not out["duplicate_ids"] and same_form)
    print(json.dumps(out, indent=1))
    (base / "bench_resume.json").write_text(json.dumps(out, indent=1))
    return 0 if out["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
