"""The machine against its own history: did this run's references run as fast as this machine usually does?

A VM's host can be busier than usual in ways the guest cannot see. Steal time shows only what the hypervisor
takes from it; a co-tenant's memory traffic and cache use show nowhere. Kernels then run slower for minutes,
and unevenly (memory- and overhead-bound ones more), so hef moves by more than a run's intervals, which
cover only the minute they were measured in. No probe inside the run can tell; the machine's history can.

Each complete run adds its references' median times (the fp32 dense realisations every family measures
throughout) to this machine's history (`machine_cache`, kind "baseline"). A block of a later run compares
its references with the machine's quiet state: per reference, the lower quartile of its last HISTORY_RUNS
medians. That is robust to one lucky run, where a median of the history would take a busy spell for
normal: a kernel cannot run faster than the machine allows, so the fast end of the history is the quiet one.
A block whose references are, by their median ratio, SLOW_TOLERANCE or more slower is `slow`.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from hwprof.measuring.devices import DeviceInfo
from hwprof.running.machine_cache import fingerprint, machine_key, read_cached, write_cached

SLOW_TOLERANCE = 0.05       # references this much slower than the quiet state, by their median: flagged
HISTORY_RUNS = 10           # the quiet state is taken over a reference's last this many runs
MIN_HISTORY = 3             # runs a reference needs in the history before it is compared
KEEP_RUNS = 50              # runs kept in the file
KIND = "baseline"


@dataclass
class StateCheck:
    """A block's references against the machine's quiet state."""
    slowdown: float | None                   # median over references of time / quiet-state time, minus 1
    ratios: dict[str, float] = field(default_factory=dict)    # per compared reference
    history_runs: int = 0                    # runs in the machine's history when the check was made

    @property
    def slow(self) -> bool:
        return self.slowdown is not None and self.slowdown >= SLOW_TOLERANCE

    def to_json(self) -> dict:
        return {"slowdown": self.slowdown, "slow": self.slow, "history_runs": self.history_runs,
                "ratios": self.ratios, "tolerance": SLOW_TOLERANCE}


def quiet_time(values: list[float]) -> float | None:
    """Pure: the quiet-state time of one reference from its history (oldest first), or None with too few."""
    recent = [v for v in values[-HISTORY_RUNS:] if v > 0]
    if len(recent) < MIN_HISTORY:
        return None
    return statistics.quantiles(recent, n=4, method="inclusive")[0]


def check_state(current: dict[str, float], runs: list[dict]) -> StateCheck:
    """Pure: `current` (reference config_id -> median seconds) against the history's runs (oldest first,
    each {"times": {config_id: seconds}})."""
    ratios = {}
    for cid, t in current.items():
        quiet = quiet_time([r["times"][cid] for r in runs if cid in r.get("times", {})])
        if quiet is not None and t > 0:
            ratios[cid] = t / quiet
    slowdown = statistics.median(ratios.values()) - 1.0 if ratios else None
    return StateCheck(slowdown, ratios, len(runs))


@dataclass
class Baseline:
    """One machine's history of reference times."""
    fingerprint: str
    machine: dict
    runs: list[dict] = field(default_factory=list)     # {"run": id, "date": ISO, "times": {config_id: s}}

    def check(self, current: dict[str, float]) -> StateCheck:
        return check_state(current, self.runs)

    def add(self, run_id: str, times: dict[str, float]) -> None:
        if times:
            self.runs = (self.runs + [{"run": run_id, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                       "times": dict(times)}])[-KEEP_RUNS:]


def load_baseline(info: DeviceInfo) -> Baseline:
    """This machine's history (empty when there is none yet or its file does not parse)."""
    key = machine_key(info)
    fp = fingerprint(key)
    data = read_cached(KIND, fp) or {}
    runs = data.get("runs")
    ok = isinstance(runs, list) and all(isinstance(r, dict) and isinstance(r.get("times"), dict) for r in runs)
    return Baseline(fp, key, runs if ok else [])


def store_baseline(b: Baseline) -> None:
    write_cached(KIND, b.fingerprint, {"fingerprint": b.fingerprint, "machine": b.machine, "runs": b.runs})
