"""The machine against its own history: do this run's numbers look like this machine's earlier runs?

A VM's host can be busier than usual in ways the guest cannot see. Steal time shows only what the hypervisor
takes from it; a co-tenant's memory traffic and cache use, and sub-tick pauses of a vCPU that stall every
OpenMP barrier, show nowhere. Kernels then run slower for seconds to minutes, and unevenly (kernels made of
many small parallel steps far more), so hef moves by more than a run's intervals, which cover only the
minute they were measured in. No probe inside the run can tell; the machine's history can.

Each complete run adds to this machine's history (`machine_cache`, kind "baseline") its references' median
times (the fp32 dense realisations every family measures throughout) and its other rows' hef_time and
hef_energy (by energy source). A block of a later run is judged against it in two ways:
- the machine: its references against the machine's quiet state, per reference the lower quartile of its
  last HISTORY_RUNS medians (robust to one lucky run, where a median would take a busy spell for normal: a
  kernel cannot run faster than the machine allows). References SLOW_TOLERANCE or more slower, by their
  median ratio, flag the block's rows `slow-machine`.
- each row: a hef whose whole interval lies outside the range of the configuration's last HISTORY_RUNS
  values is `off-history`: it disagrees with every earlier run here beyond its own uncertainty.
Then each row's hef interval is widened to cover the run-to-run spread of its configuration's last runs
(`widen`): rounds within one run cannot see how much a whole run moves, the history can. hef_energy's
interval likewise, from its last runs measured by the same kind of meter.
A run judged slow adds its references' times (the quartile needs the slow runs too) but not its hefs.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from hwprof.measuring.contention import SLOWER_THAN_QUIET as SLOW_TOLERANCE
from hwprof.measuring.devices import DeviceInfo
from hwprof.running.machine_cache import describe_path, fingerprint, machine_key, read_cached, update_cached
from hwprof.running.results import Row

HISTORY_RUNS = 10           # a configuration is compared with its last this many runs
MIN_HISTORY = 3             # runs a configuration needs in the history before it is compared
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


def _recent(values: list[float]) -> list[float]:
    """A configuration's values from its last HISTORY_RUNS runs (oldest first), non-positive ones left out."""
    return [v for v in values[-HISTORY_RUNS:] if v > 0]


def quiet_time(values: list[float]) -> float | None:
    """Pure: the quiet-state time of one reference from its history (oldest first), or None with too few."""
    recent = _recent(values)
    if len(recent) < MIN_HISTORY:
        return None
    return statistics.quantiles(recent, n=4, method="inclusive")[0]


def _times(runs: list[dict], config_id: str) -> list[float]:
    return [r["times"][config_id] for r in runs if config_id in r.get("times", {})]


def check_state(current: dict[str, float], runs: list[dict]) -> StateCheck:
    """Pure: `current` (reference config_id -> median seconds) against the history's runs (oldest first,
    each {"times": {config_id: seconds}})."""
    ratios = {}
    for cid, t in current.items():
        quiet = quiet_time(_times(runs, cid))
        if quiet is not None and t > 0:
            ratios[cid] = t / quiet
    slowdown = statistics.median(ratios.values()) - 1.0 if ratios else None
    return StateCheck(slowdown, ratios, len(runs))


def hef_range(values: list[float]) -> tuple[float, float] | None:
    """Pure: the range of a configuration's last HISTORY_RUNS hefs (oldest first), or None with too few."""
    recent = _recent(values)
    return (min(recent), max(recent)) if len(recent) >= MIN_HISTORY else None


def run_spread(values: list[float]) -> tuple[float, int] | None:
    """Pure: the standard deviation of ln hef over a configuration's last HISTORY_RUNS runs (oldest first) and
    how many runs it came from, or None with fewer than MIN_HISTORY: how much one run's hef moves between runs
    on this machine."""
    logs = [math.log(v) for v in _recent(values) if math.isfinite(v)]
    return (statistics.stdev(logs), len(logs)) if len(logs) >= MIN_HISTORY else None


def import_quantiles() -> None:
    """Import what `widen` needs ahead of time (a runner does it while it waits idle anyway)."""
    import scipy.special  # noqa: F401


def widen(hef: float, ci: tuple[float | None, float | None], sd: float, runs: int,
          confidence: float) -> tuple[float, float]:
    """Pure: hef's interval made to cover the run-to-run spread as well as its rounds' spread.

    A run's ln hef is the configuration's ln hef plus a run effect of sd sigma (host state, placement, and the
    run's own sampling); `sd` estimates sigma from `runs` earlier runs, so (ln hef - truth) / sd follows
    Student's t with runs - 1 degrees of freedom, and hef * exp(+-t sd) is an interval at `confidence`. The
    rounds' own interval is kept where it is wider."""
    from scipy.special import stdtrit       # imported here: only runs with a history need it
    t = float(stdtrit(runs - 1, 1.0 - (1.0 - confidence) / 2.0))
    lo, hi = _bounds(hef, ci)
    return min(lo, hef * math.exp(-t * sd)), max(hi, hef * math.exp(t * sd))


def off_history(hef: float, ci: tuple[float | None, float | None], past: tuple[float, float]) -> bool:
    """Pure: the hef's interval (the hef itself where it has none) lies wholly outside the past range."""
    lo, hi = _bounds(hef, ci)
    return lo > past[1] or hi < past[0]


def _bounds(hef: float, ci: tuple[float | None, float | None]) -> tuple[float, float]:
    """The interval's ends, the hef itself standing in for a missing or non-finite one."""
    return tuple(v if _finite(v) else hef for v in ci)


@dataclass
class Judgement:
    """A block's rows against the history, flagged, and what the block adds to it."""
    rows: list[Row]
    state: StateCheck | None              # None: no reference of the block had a history
    compared: int = 0                     # rows whose hef was compared with their history
    off: list[str] = field(default_factory=list)    # rows flagged off-history
    widened: int = 0                      # rows whose hef interval now covers their run-to-run spread
    times: dict[str, float] = field(default_factory=dict)
    hefs: dict[str, float] = field(default_factory=dict)
    energy_hefs: dict[str, dict[str, float]] = field(default_factory=dict)    # by energy_source


@dataclass
class Baseline:
    """One machine's history of reference times and hefs."""
    fingerprint: str
    machine: dict
    # {"run", "date", "times": {id: s}, "hef": {id: hef}, "hef_energy": {energy_source: {id: hef}}}
    runs: list[dict] = field(default_factory=list)

    def check(self, current: dict[str, float]) -> StateCheck:
        return check_state(current, self.runs)

    def quiet_s(self, config_id: str) -> float | None:
        """A reference's quiet-state seconds per call, or None without enough history."""
        return quiet_time(_times(self.runs, config_id))

    def _hefs(self, config_id: str) -> list[float]:
        return [r["hef"][config_id] for r in self.runs if config_id in (r.get("hef") or {})]

    def _energy_hefs(self, config_id: str, source: str) -> list[float]:
        """A configuration's past hef_energy by one meter (an estimate's spread says nothing of RAPL's)."""
        by = [(r.get("hef_energy") or {}).get(source) or {} for r in self.runs]
        return [b[config_id] for b in by if config_id in b]

    def judge(self, rows: list[Row], references: set[str], confidence: float) -> Judgement:
        """Flag the block's rows and widen their hef intervals (see the module docstring); contended rows
        neither judge nor join, and keep their own intervals."""
        def usable(r: Row) -> bool:
            return r.status == "ok" and "contended" not in r.flags.split(",")
        times = {r.config_id: r.time_s_median for r in rows
                 if r.config_id in references and usable(r) and r.time_s_median}
        state = self.check(times) if times else None
        state = state if state is not None and state.ratios else None
        slow = state is not None and state.slow
        j = Judgement([], state, times=times)
        for r in rows:
            flags, spread = [], {}
            if slow and r.status == "ok":
                flags.append("slow-machine")
            if usable(r) and r.config_id not in references and _finite(r.hef_time):
                past_hefs = self._hefs(r.config_id)
                past = hef_range(past_hefs)
                if past is not None:
                    j.compared += 1
                    if off_history(r.hef_time, (r.hef_time_ci_low, r.hef_time_ci_high), past):
                        flags.append("off-history")
                        j.off.append(r.config_id)
                spread = _widened(r.hef_time, (r.hef_time_ci_low, r.hef_time_ci_high), past_hefs, confidence,
                                  ("hef_time_ci_low", "hef_time_ci_high", "hef_time_run_sd"))
                j.widened += bool(spread)
                if not slow:
                    j.hefs[r.config_id] = r.hef_time
                if _finite(r.hef_energy) and r.energy_source not in ("", "none"):
                    spread |= _widened(r.hef_energy, (r.hef_energy_ci_low, r.hef_energy_ci_high),
                                       self._energy_hefs(r.config_id, r.energy_source), confidence,
                                       ("hef_energy_ci_low", "hef_energy_ci_high", "hef_energy_run_sd"))
                    if not slow:
                        j.energy_hefs.setdefault(r.energy_source, {})[r.config_id] = r.hef_energy
            if flags or spread:
                r = replace(r, flags=",".join(filter(None, [r.flags, *flags])), **spread)
            j.rows.append(r)
        return j

    def add(self, run_id: str, times: dict[str, float], hefs: dict[str, float],
            energy_hefs: dict[str, dict[str, float]] | None = None) -> dict | None:
        """Append a run (none without rows); the entry added."""
        if not (times or hefs):
            return None
        entry = {"run": run_id, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "times": dict(times), "hef": dict(hefs)}
        if energy_hefs:
            entry["hef_energy"] = {source: dict(h) for source, h in energy_hefs.items()}
        self.runs = (self.runs + [entry])[-KEEP_RUNS:]
        return entry


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _widened(hef: float, ci: tuple[float | None, float | None], past: list[float], confidence: float,
             columns: tuple[str, str, str]) -> dict:
    """The row's new interval and run-to-run sd under `columns` (low, high, sd), or nothing without a spread."""
    moved = run_spread(past)
    if moved is None:
        return {}
    sd, runs = moved
    return dict(zip(columns, (*widen(hef, ci, sd, runs, confidence), sd)))


def load_baseline(info: DeviceInfo, warn: Callable[[str], None] = lambda text: None) -> Baseline:
    """This machine's history (empty when there is none yet or its file does not parse). Entries that are not
    history (a time that is not a finite positive number, a run that is not an object) are left out, said
    through `warn`, and the file rewritten without them: they never fail a run, nor judge one."""
    key = machine_key(info)
    fp = fingerprint(key)
    data = read_cached(KIND, fp)
    runs, dropped = clean_runs(data)
    if dropped:
        warn(f"this machine's history ({describe_path(KIND, fp)}) held {dropped} entries that are not times or "
             f"hefs (not finite positive numbers, or of the wrong type): left out, and the file rewritten")
        update_cached(KIND, fp, lambda now: {"fingerprint": fp, "machine": key, "runs": clean_runs(now)[0]})
    return Baseline(fp, key, runs)


def clean_runs(data) -> tuple[list[dict], int]:
    """Pure: a cached history's runs with every entry that is not one left out, and how many were. A run keeps
    its valid times and hefs; one left with neither goes with them."""
    runs = data.get("runs") if isinstance(data, dict) else None
    if runs is None:
        return [], 0
    if not isinstance(runs, list):
        return [], 1
    out, dropped = [], 0
    for r in runs:
        if not isinstance(r, dict):
            dropped += 1
            continue
        entry = {k: r[k] for k in ("run", "date") if isinstance(r.get(k), str)}
        for k in ("times", "hef"):
            entry[k], bad = _values(r.get(k, {}))
            dropped += bad
        energy = r.get("hef_energy")
        if energy is not None:
            if not isinstance(energy, dict):
                dropped += 1
            else:
                entry["hef_energy"] = {}
                for source, values in energy.items():
                    kept, bad = _values(values)
                    dropped += bad
                    if isinstance(source, str) and kept:
                        entry["hef_energy"][source] = kept
        if entry["times"] or entry["hef"]:      # its bad entries are counted above
            out.append(entry)
    return out, dropped


def _values(d) -> tuple[dict[str, float], int]:
    """The entries of {config_id: value} that are finite positive numbers, and how many were not."""
    if not isinstance(d, dict):
        return {}, 1
    kept = {k: float(v) for k, v in d.items() if isinstance(k, str) and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v) and v > 0}
    return kept, len(d) - len(kept)


def _runs(data: dict | None) -> list[dict]:
    return clean_runs(data)[0]


def record_run(b: Baseline, run_id: str, times: dict[str, float], hefs: dict[str, float],
               energy_hefs: dict[str, dict[str, float]] | None = None) -> None:
    """Add a run to the history, in memory and on disk: appended to the file as it is now (under its lock),
    not written over it, so a run that ended meanwhile keeps its entry."""
    entry = b.add(run_id, times, hefs, energy_hefs)
    if entry is not None:
        update_cached(KIND, b.fingerprint, lambda data: {"fingerprint": b.fingerprint, "machine": b.machine,
                                                         "runs": (_runs(data) + [entry])[-KEEP_RUNS:]})
