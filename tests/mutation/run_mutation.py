"""Mutation testing of the modules that produce numbers, with mutmut 2 (it mutates the file in place and
runs a test command, which works with hwprof's package-directory mapping).

    pip install "mutmut<3"
    python tests/mutation/run_mutation.py                 # every module below (about 30-40 min on 2 cores)
    python tests/mutation/run_mutation.py stats forecast  # some of them
    python tests/mutation/run_mutation.py --report        # the score table from the last runs

Each module is mutated against the fast tests that cover it. Results accumulate in .mutmut-cache;
`mutmut show ID` prints a mutant, `mutmut results` lists the survivors. Equivalent mutants (changes that
cannot alter behaviour) are listed in EQUIVALENT with the reason, and counted as killed in the score.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTEST = "python -m pytest -x -q -p no:cacheprovider -p no:randomly"
MODULES = {
    "efficiency": ("profiler/running/efficiency.py", "tests/running/test_efficiency.py tests/running/test_rows.py"),
    "flops": ("kernels/flops.py", "tests/kernels/test_flops.py"),
    "stats": ("profiler/measuring/stats.py", "tests/measuring/test_stats.py tests/measuring/test_rounds.py"),
    "forecast": ("profiler/analysis/forecast.py", "tests/analysis/test_forecast.py"),
    "compare": ("profiler/analysis/compare.py", "tests/analysis/test_compare.py"),
    "rows": ("profiler/running/rows.py", "tests/running/test_rows.py"),
    "models": ("profiler/analysis/models.py", "tests/analysis/test_models.py"),
    "claims": ("profiler/analysis/claims.py", "tests/analysis/test_claims.py"),
    "rounds": ("profiler/measuring/rounds.py", "tests/measuring/test_rounds.py tests/measuring/test_rounds_clock.py"),
    "measure": ("profiler/measuring/measure.py",
                "tests/measuring/test_measure.py tests/measuring/test_measure_clock.py tests/measuring/test_rounds.py"),
}
# (file, line text stripped) -> why the mutant is equivalent
EQUIVALENT: dict[tuple[str, str], str] = {
    ("kernels/flops.py", "if sq <= sk:"):
        "sq < sk: at sq == sk both branches give sk(sk+1)/2",
    ("kernels/flops.py", 'return window_pairs(sq, sk, int(mask.split(":", 1)[1]))'):
        'split(":", 2): a validated mask "window:W" has one colon, so both splits agree',
    ("profiler/measuring/measure.py", "reading = None"):
        "any initial value: the window loop always runs at least once and assigns the reading",
    ("profiler/measuring/rounds.py",
     "paired_energy_ratio: float | None = None     # reference J/call over configuration J/call, same rounds"):
        "float & None in an annotation: never evaluated (from __future__ import annotations); the default is tested",
    ("profiler/measuring/stats.py", "@functools.lru_cache(maxsize=4096)"):
        "the cache's size or presence changes speed, not the ranks",
    ("profiler/measuring/stats.py", "if n > 1000:   # normal approximation; agrees with the exact ranks to within one at this size"):
        "moving the switch by one sample picks the exact or the approximate ranks, both valid at n ~ 1000",
    ("profiler/measuring/stats.py", "l = max(1, int(math.floor(n / 2 - z * math.sqrt(n) / 2)))"):
        "max(2, ...): above n = 1000 the lower rank is ~470 or more, so the floor of 1 or 2 never binds",
    ("profiler/measuring/stats.py", "term = term * (n - l + 1) // l"):
        "true division: up to n = 1000 (where this exact path ends) the binomial terms fit a float and the "
        "cumulative comparison picks the same rank; // keeps it exact by construction",
}


def run(names: list[str]) -> None:
    for name in names:
        path, tests = MODULES[name]
        log = REPO / f".mutmut-{name}.log"
        print(f"mutating {path} against {tests} (log: {log.name})", flush=True)
        with open(log, "w") as fh:
            subprocess.run(["mutmut", "run", "--paths-to-mutate", path, "--runner", f"{PYTEST} {tests}"],
                           cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)


def report() -> int:
    db = sqlite3.connect(REPO / ".mutmut-cache")
    rows = db.execute("select f.filename, l.line, l.line_number, m.id, m.status from Mutant m "
                      "join Line l on m.line = l.id join SourceFile f on l.sourcefile = f.id").fetchall()
    by_file: dict[str, dict[str, int]] = {}
    survivors = []
    for filename, line, number, mid, status in rows:
        counts = by_file.setdefault(filename, {"killed": 0, "survived": 0, "equivalent": 0, "other": 0})
        if status == "ok_killed":
            counts["killed"] += 1
        elif status == "bad_timeout":           # the mutant made the tests hang: detected
            counts["killed"] += 1
        elif status in ("bad_survived", "ok_suspicious"):
            if (filename, line.strip()) in EQUIVALENT:
                counts["equivalent"] += 1
            else:
                counts["survived"] += 1
                survivors.append((filename, number, mid, line.strip()))
        else:
            counts["other"] += 1
    total_k = total = 0
    print(f"{'module':42} {'killed':>7} {'equiv':>6} {'survived':>9} {'score':>7}")
    for f, c in sorted(by_file.items()):
        n = c["killed"] + c["equivalent"] + c["survived"]
        total_k += c["killed"] + c["equivalent"]
        total += n
        print(f"{f:42} {c['killed']:7d} {c['equivalent']:6d} {c['survived']:9d} {100 * (c['killed'] + c['equivalent']) / max(n, 1):6.1f}%")
    print(f"{'all':42} {'':7} {'':6} {total - total_k:9d} {100 * total_k / max(total, 1):6.1f}%")
    for f, number, mid, line in survivors:
        print(f"  survived #{mid} {f}:{number + 1}: {line}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args != ["--report"]:
        run([a for a in args if a in MODULES] or list(MODULES))
    sys.exit(report())
