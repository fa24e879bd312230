"""A run's session: options resolved once (suite, device, threads, meter, policy), its run directory
created or reopened for resume, and run.json written at the start and the end.

The sweep itself lives in `runner`; this module decides *what* runs *where* and records it.
"""
from __future__ import annotations

import json
import platform
import threading
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from hwprof.errors import BadInput
from hwprof.kernels.build import estimate_bytes
from hwprof.measuring.devices import DeviceInfo, describe, resolve_device
from hwprof.measuring.measure import Policy
from hwprof.measuring.meters import EnergyMeter, select_meter
from hwprof.measuring.timing import Timer, timer_for
from hwprof.running import bounds
from hwprof.running.baseline import Baseline
from hwprof.running.journal import Journal, Replay
from hwprof.running.results import SCHEMA_VERSION, Row, header_text
from hwprof.running.resume import check_meta, check_method, verify_results
from hwprof.running.roofs import Roofs
from hwprof.running.rundir import RunLock, check_free_space, create_run_dir, read_run_json, write_json
from hwprof.running.suite import Suite, load_suite, suite_from_data
from hwprof.version import __version__


@dataclass
class RunOptions:
    suite: str | None = None           # preset or TOML path; None = quick (or the stored suite on resume)
    device: str | None = None          # None = the suite's device (default auto)
    out_dir: Path = Path("reports")
    resume: Path | None = None
    seed: int | None = None            # None = 0 (or the original run's seed on resume)
    energy: str = "auto"
    cpu_tdp_watts: float | None = None
    flush_l2: bool = False
    threads: int | None = None         # None = torch's default (or the original run's on resume)
    budget_s: float | None = None      # overrides the suite's
    ci_target: float | None = None
    cpu_max_ghz: float | None = None   # for the theoretical CPU peak where cpufreq is missing
    idle_s: float = 1.0
    device_warmup_s: float | None = None   # default: 0.5 s CPU, 3 s CUDA (until clocks settle)
    quiet_check_s: float = 1.0         # probe what else uses the CPUs before the run (0: no check, no re-measure)
    wait_quiet_s: float = 0.0          # wait up to this long for the machine to be quiet before starting
    roofs: bool = True                 # measure (or load) this machine's roofs and place every row under them
    baseline: bool = True              # compare the references with this machine's history, and add to it
    remeasure_roofs: bool = False      # ignore the cached roofs and measure them again
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    suite_data: dict | None = None     # a parsed suite (as a fleet task receives it) instead of `suite`
    prior_rows: list[dict] = field(default_factory=list)   # rows measured before (fleet resume): not re-measured


@dataclass
class Session:
    opts: RunOptions
    suite: Suite
    device: torch.device
    info: DeviceInfo
    meter: EnergyMeter
    policy: Policy
    timer: Timer
    run_dir: Path
    meta: dict
    seed: int
    done: dict[str, Row] = field(default_factory=dict)     # rows already written (resume)
    threads_before: int = 0                                # restored when the session closes
    measured_s: float = 0.0                                # this session's time inside sampling windows
    roofs: Roofs | None = None                             # set by the sweep, before the first block
    baseline: Baseline | None = None                       # this machine's history, set by the sweep
    journal: Journal | None = None                         # rounds.jsonl, opened by the sweep
    lock: RunLock | None = None                            # held while this process measures into run_dir
    rejected_rows: int = 0                                 # results.csv records a resume set aside
    replay: Replay = field(default_factory=Replay)         # what rounds.jsonl held when the sweep began
    stop: threading.Event = field(default_factory=threading.Event)   # a signal asked the run to stop

    @property
    def journal_key(self) -> str:
        """The suite's fingerprint in rounds.jsonl: its configurations, settings and seed."""
        import hashlib
        import json
        doc = {**self.suite.resolved(), "models": None, "seed": self.seed, "device": str(self.device)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _option(name: str, value):
    """An option within its bounds (running.bounds: the same a suite's value or a flag gets); None stays None."""
    if value is None:
        return None
    try:
        return bounds.check(name, value)
    except ValueError as e:
        raise BadInput(f"{bounds.BOUNDS[name].what} ({name}) {e}") from None


def _resolve_suite(opts: RunOptions, stored: dict | None) -> tuple[Suite, torch.device]:
    """Parse the suite once, resolve the device from it, then select that device type's configurations."""
    if opts.suite_data is not None:
        suite = suite_from_data(opts.suite_data, opts.suite or "<fleet suite>")
    elif opts.suite is None and stored is not None:
        suite = suite_from_data(stored["raw"], stored["source"])
        suite.budget_s, suite.ci_target = stored["budget_s"], stored["ci_target"]   # the original's overrides
    else:
        suite = load_suite("quick" if opts.suite is None else opts.suite)
    device = resolve_device(opts.device or suite.device)
    suite = suite.for_device(device.type)
    if opts.budget_s is not None:
        suite.budget_s = _option("budget_s", opts.budget_s)
    if opts.ci_target is not None:
        suite.ci_target = _option("ci_target", opts.ci_target)
    return suite, device


def check_memory(suite: Suite, info: DeviceInfo) -> None:
    """Reject, before anything runs, a configuration that cannot fit in the device's memory at all."""
    for spec in suite.specs:
        need = estimate_bytes(spec, torch.device(info.device))
        if need > info.total_memory_bytes:
            raise BadInput(f"suite {suite.source}: {spec.config_id} needs about {need / 2**30:.1f} GiB; "
                           f"{info.name} has {info.total_memory_bytes / 2**30:.1f} GiB")


def _environment(device: torch.device, info: DeviceInfo) -> dict:
    return {
        "host": platform.node(), "os": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "device_description": info.to_json(), "threads": torch.get_num_threads(),
    }


def open_session(opts: RunOptions) -> Session:
    """Resolve everything a run needs and write run.json; BadInput (nothing written) when anything is off."""
    stored_meta = read_run_json(opts.resume) if opts.resume is not None else None
    if stored_meta is not None:
        check_meta(stored_meta, Path(opts.resume))
        check_method(stored_meta, Path(opts.resume), {
            "threads": opts.threads, "seed": opts.seed, "budget_s": opts.budget_s, "ci_target": opts.ci_target,
            "energy": None if opts.energy == "auto" else opts.energy, "flush_l2": opts.flush_l2 or None})
        # what the rows were placed under and judged by stays the original's: a resume started without the
        # original's --no-history would judge its rounds by a history the first part never saw
        kept = stored_meta.get("method_options")
        kept = {k: v for k, v in kept.items() if isinstance(v, bool)} if isinstance(kept, dict) else {}
        opts = replace(opts, roofs=kept.get("roofs", opts.roofs), baseline=kept.get("history", opts.baseline))
    stored = stored_meta["suite"] if stored_meta else None
    suite, device = _resolve_suite(opts, stored)
    for name in ("cpu_max_ghz", "cpu_tdp_watts", "quiet_check_s", "wait_quiet_s"):
        _option(name, getattr(opts, name))
    threads = _option("threads", opts.threads if opts.threads is not None
                      else (stored_meta or {}).get("threads_requested"))
    seed = _option("seed", opts.seed if opts.seed is not None else (stored_meta or {}).get("seed", 0))

    done: dict[str, Row] = {}
    rejected = 0
    lock = None
    if stored_meta is not None:
        run_dir = Path(opts.resume)
        if stored_meta["device"] != str(device):
            raise BadInput(f"resume {run_dir}: that run used device {stored_meta['device']}, this one {device}")
        if stored["config_ids"] != suite.resolved()["config_ids"]:
            raise BadInput(f"resume {run_dir}: the suite differs from the original run's "
                           f"({stored['source']}); resume with the same suite or start a new run")
        lock = RunLock(run_dir)
        done, rejected = verify_results(run_dir / "results.csv", set(stored["config_ids"]))
    for rec in opts.prior_rows:
        done[rec["config_id"]] = Row.from_record(rec)

    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        info = describe(device, opts.cpu_max_ghz)
        check_memory(suite, info)
        meter, meter_notes = select_meter(device, opts.energy, opts.cpu_tdp_watts)
        if stored_meta is not None and meter.source != stored_meta["energy"]["source"]:
            raise BadInput(f"resume {opts.resume}: it was measured with the {stored_meta['energy']['source']} meter "
                           f"and this machine now gives {meter.source}; resume with --energy "
                           f"{stored_meta['energy']['source']}, or start a new run")
    except BaseException:
        torch.set_num_threads(threads_before)
        if lock is not None:
            lock.release()
        raise

    if stored_meta is not None:
        meta = stored_meta
        meta["resumed"] = meta.get("resumed", []) + [time.strftime("%Y-%m-%dT%H:%M:%S%z")]
        if rejected:
            meta.setdefault("resume_rejected_rows", []).append(rejected)
    else:
        meta = {
            "tool": "hwprof", "version": __version__, "schema_version": SCHEMA_VERSION,
            "command": opts.command, "suite": {**suite.resolved(), "raw": suite.raw},
            "device": str(device), "seed": seed, "threads_requested": threads,
            "method_options": {"roofs": opts.roofs, "history": opts.baseline},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    policy = Policy(budget_s=suite.budget_s, ci_target=suite.ci_target, warmup_s=suite.warmup_s,
                    min_window_s=suite.min_window_s, rounds=suite.rounds, round_s=suite.round_s,
                    span_s=suite.span_s)
    timer = timer_for(device, opts.flush_l2)
    meta.update({
        "status": "running", **_environment(device, info),
        "timer": timer.name,
        "flush_l2": opts.flush_l2,
        "energy": {"source": meter.source, "description": meter.describe(), "fallbacks": meter_notes},
        "policy": policy.__dict__,
        "peak_table": {p: v.__dict__ for p, v in info.peaks.items()},
    })
    try:
        if stored_meta is None:        # whole from its first moment: run.json and results.csv's header together
            run_dir = create_run_dir(opts.out_dir, suite.name, str(device), {
                "run.json": json.dumps(meta, indent=2, default=str) + "\n", "results.csv": header_text()})
            lock = RunLock(run_dir)
        else:
            check_free_space(run_dir)
            try:
                write_json(run_dir / "run.json", meta)
            except OSError as e:
                raise BadInput(f"resume {run_dir}: cannot write run.json ({e.strerror})") from None
    except BaseException:
        torch.set_num_threads(threads_before)
        if lock is not None:
            lock.release()
        raise
    session = Session(opts, suite, device, info, meter, policy, timer, run_dir, meta, seed, done, threads_before)
    session.lock, session.rejected_rows = lock, rejected
    return session


def close_session(session: Session, status: str, wall_s: float) -> None:
    """Record how the run ended (wall and measured time accumulate over resumes); restore torch's threads."""
    meta = session.meta
    meta["status"] = status
    meta["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["wall_s"] = meta.get("wall_s", 0.0) + wall_s
    meta["measured_s"] = meta.get("measured_s", 0.0) + session.measured_s
    try:
        write_json(session.run_dir / "run.json", meta)
    except OSError:
        pass                 # a full or read-only disk: run.json keeps saying running, which a resume accepts
    finally:
        session.meter.close()
        torch.set_num_threads(session.threads_before)
        if session.lock is not None:
            session.lock.release()
