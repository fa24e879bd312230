"""The suite runner: expand a suite, measure each configuration, append one row per configuration.

One configuration's failure (exception, out-of-memory, NaN output, a meter that stops) becomes an
`error` row and the sweep goes on; Ctrl-C/SIGTERM stop after the last finished row, and
`resume` completes the rest without repeating it.
"""
from __future__ import annotations

import gc
import math
import platform
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
import pandas as pd
import torch

import kernels
from kernels.build import estimate_bytes
from kernels.case import all_finite
from kernels.spec import MatmulSpec, Spec, reference_of, shape_str
from profiler import __version__
from profiler import efficiency as eff
from profiler.devices import DeviceInfo, Monitor, describe, free_memory, resolve_device, throttled
from profiler.errors import BadInput
from profiler.measure import Measurement, Policy, measure
from profiler.meters import EnergyMeter, select_meter
from profiler.results import SCHEMA_VERSION, ResultsWriter, Row, read_results
from profiler.rundir import create_run_dir, read_run_json, write_json
from profiler.suite import Suite, load_suite, suite_from_data
from profiler.timing import Timer, timer_for


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after flushing; run_dir can be resumed."""

    def __init__(self, run_dir: Path):
        super().__init__(f"interrupted; resume with: hwprof run --resume {run_dir}")
        self.run_dir = run_dir


@dataclass
class RunOptions:
    suite: str | None = None           # preset or TOML path; None = quick (or the stored suite on resume)
    device: str | None = None          # None = the suite's device (default auto)
    out_dir: Path = Path("reports")
    resume: Path | None = None
    seed: int = 0
    energy: str = "auto"
    cpu_tdp_watts: float | None = None
    flush_l2: bool = False
    threads: int | None = None
    budget_s: float | None = None      # overrides the suite's
    ci_target: float | None = None
    cpu_max_ghz: float | None = None       # for the theoretical CPU peak where cpufreq is missing
    idle_s: float = 1.0
    device_warmup_s: float | None = None   # default: 0.5 s CPU, 3 s CUDA (until clocks settle)
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class RunResult:
    run_dir: Path
    results: pd.DataFrame
    meta: dict


# ---------------------------------------------------------------------------------------------- setup

def _resolve_suite(opts: RunOptions, stored: dict | None) -> tuple[Suite, torch.device]:
    if opts.suite is None and stored is not None:
        probe = suite_from_data(stored["raw"], stored["source"])
    else:
        probe = load_suite(opts.suite or "quick")
    device = resolve_device(opts.device or probe.device)
    if opts.suite is None and stored is not None:
        suite = suite_from_data(stored["raw"], stored["source"], device.type)
        suite.budget_s, suite.ci_target = stored["budget_s"], stored["ci_target"]   # the original's overrides
    else:
        suite = load_suite(opts.suite or "quick", device.type)
    if opts.budget_s is not None:
        suite.budget_s = _check_positive(opts.budget_s, "--budget-s")
    if opts.ci_target is not None:
        suite.ci_target = _check_positive(opts.ci_target, "--ci-target")
    return suite, device


def _check_positive(v: float, what: str) -> float:
    if not (v > 0 and math.isfinite(v)):
        raise BadInput(f"{what} must be a positive number (got {v})")
    return float(v)


def check_memory(suite: Suite, device_info: DeviceInfo) -> None:
    """Reject, before anything runs, a configuration that cannot fit in the device's memory at all."""
    for spec in suite.specs:
        need = estimate_bytes(spec)
        if need > device_info.total_memory_bytes:
            raise BadInput(f"suite {suite.source}: {spec.config_id} needs about {need / 2**30:.1f} GiB; "
                           f"{device_info.name} has {device_info.total_memory_bytes / 2**30:.1f} GiB")


def _environment(device: torch.device, info: DeviceInfo) -> dict:
    return {
        "host": platform.node(), "os": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "device_description": info.to_json(), "threads": torch.get_num_threads(),
    }


def device_warmup(device: torch.device, seconds: float) -> None:
    """Busy the device until clocks settle before the first configuration."""
    n = 2048 if device.type == "cuda" else 256
    a = torch.randn(n, n, device=device)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(8):
            a @ a
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def idle_power(meter: EnergyMeter, seconds: float) -> float | None:
    if meter.source == "none" or seconds <= 0:
        return None
    meter.start()
    time.sleep(max(seconds, meter.min_window_s))
    reading = meter.stop()
    if reading.energy_j is None or reading.window_s <= 0:
        return None
    return reading.energy_j / reading.window_s


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM behaves like Ctrl-C: finish flushing, mark the run interrupted."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:           # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------- rows

def base_row(spec: Spec, device: torch.device, status: str, reason: str = "") -> Row:
    density = spec.sparsity.density if isinstance(spec, MatmulSpec) else spec.density
    return Row(config_id=spec.config_id, kernel=spec.kernel, shape=shape_str(spec.shape), precision=spec.precision,
               sparsity=spec.sparsity_column, density=density, backend=spec.backend, pass_=spec.pass_,
               device=str(device), status=status, reason=reason, logical_flops=spec.logical_flops)


def ok_row(spec: Spec, case: kernels.Case, m: Measurement, device: torch.device, info: DeviceInfo,
           rel_error: float, reference: Row | None, before: dict, after: dict) -> Row:
    t = m.summary.median
    energy = m.energy_per_call_j
    row = base_row(spec, device, "ok")
    peak = info.peaks.get(spec.precision)
    flags = list(m.flags)
    if throttled(before, after):
        flags.append("throttled")
    if m.energy.source == "estimate":
        flags.append("estimate")
    row = replace(
        row, density=case.density, backend=case.backend,
        physical_flops=case.physical_flops, time_s_median=t, time_s_ci_low=m.summary.ci_low,
        time_s_ci_high=m.summary.ci_high, time_rel_iqr=m.summary.rel_iqr, repeats=m.summary.n,
        energy_j=energy, power_w=m.power_w, energy_source=m.energy.source if energy is not None else "none",
        logical_flops_per_s=eff.rate(case.logical_flops, t), physical_flops_per_s=eff.rate(case.physical_flops, t),
        logical_flops_per_j=eff.rate(case.logical_flops, energy),
        peak_flops_per_s=peak.flops_per_s if peak else None, peak_source=peak.source if peak else "",
        rel_error=rel_error, flags=",".join(dict.fromkeys(flags)),
        pruning_error=case.extras.get("pruning_error"), bytes_moved=case.bytes_moved,
        arithmetic_intensity=case.logical_flops / case.bytes_moved if case.bytes_moved else None,
        batch=m.batch, window_s=m.window_s,
        clock_mhz_start=before.get("clock_mhz"), clock_mhz_end=after.get("clock_mhz"),
        temp_c_start=before.get("temp_c"), temp_c_end=after.get("temp_c"),
    )
    row.mfu = eff.mfu(row.logical_flops_per_s, row.peak_flops_per_s)
    return with_hef(row, reference)


def with_hef(row: Row, reference: Row | None) -> Row:
    """hef against the reference row (the row itself when it is its own reference: hef = 1)."""
    if reference is None and _is_reference(row):
        reference = row
    if reference is None or reference.status != "ok":
        return row
    row.hef_time = eff.hef(row.logical_flops_per_s, reference.logical_flops_per_s)
    row.hef_energy = eff.hef(row.logical_flops_per_j, reference.logical_flops_per_j)
    row.doublings_time = eff.doublings(row.hef_time)
    row.doublings_energy = eff.doublings(row.hef_energy)
    return row


def _is_reference(row: Row) -> bool:
    if row.kernel == "matmul":
        return row.precision == "fp32" and row.sparsity == "dense"
    return row.precision == "fp32" and row.backend == "math"


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, torch.OutOfMemoryError) or isinstance(e, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text or type(e).__name__}"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_spec(spec: Spec, device: torch.device, info: DeviceInfo, timer: Timer, meter: EnergyMeter,
                 monitor: Monitor, policy: Policy, seed: int, reference: Row | None) -> tuple[Row, float]:
    """Measure one configuration; never raises for the configuration's own failures. Returns (row, window_s)."""
    need = estimate_bytes(spec)
    free = free_memory(device)
    if need > free:
        return base_row(spec, device, "error", f"skipped: needs about {need / 2**30:.1f} GiB, "
                                               f"{free / 2**30:.1f} GiB free on {device}"), 0.0
    case = out = None
    try:
        try:
            case, out = kernels.build_case(spec, device, seed)
        except kernels.Unsupported as e:
            return base_row(spec, device, "unsupported", str(e)), 0.0
        if not all_finite(out):
            return replace(base_row(spec, device, "error", "output contains NaN/Inf; no rate is reported"),
                           flags="nonfinite"), 0.0
        rel_error = case.rel_error(out)
        out = None
        with case.context():
            before = monitor.snapshot()
            m = measure(case.run, timer, meter, policy)
            after = monitor.snapshot()
        return ok_row(spec, case, m, device, info, rel_error, reference, before, after), m.window_s
    except KeyboardInterrupt:
        raise
    except Exception as e:       # one configuration's failure must not lose the others
        case = out = None
        _release(device)         # after an out-of-memory especially: give the next configuration room
        return base_row(spec, device, "error", _reason(e)), 0.0
    finally:
        case = out = None        # drop the inputs before the next configuration allocates its own
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- run

def execute(opts: RunOptions) -> RunResult:
    stored = None
    done: dict[str, Row] = {}
    if opts.resume is not None:
        stored_meta = read_run_json(opts.resume)
        stored = stored_meta["suite"]
    suite, device = _resolve_suite(opts, stored)
    if opts.cpu_max_ghz is not None:
        _check_positive(opts.cpu_max_ghz, "--cpu-max-ghz")
    if opts.threads is not None:
        if opts.threads <= 0:
            raise BadInput(f"--threads must be positive (got {opts.threads})")
        torch.set_num_threads(opts.threads)
    info = describe(device, opts.cpu_max_ghz)
    check_memory(suite, info)
    meter, meter_notes = select_meter(device, opts.energy, opts.cpu_tdp_watts)

    if opts.resume is not None:
        run_dir = Path(opts.resume)
        if stored_meta["device"] != str(device):
            raise BadInput(f"--resume {run_dir}: that run used device {stored_meta['device']}, this one {device}")
        if stored["config_ids"] != suite.resolved()["config_ids"]:
            raise BadInput(f"--resume {run_dir}: the suite differs from the original run's "
                           f"({stored['source']}); resume with the same suite or start a new run")
        existing = read_results(run_dir / "results.csv")
        for rec in existing.to_dict("records"):
            done[rec["config_id"]] = _row_from_record(rec)
        meta = stored_meta
        meta["resumed"] = meta.get("resumed", []) + [time.strftime("%Y-%m-%dT%H:%M:%S%z")]
    else:
        run_dir = create_run_dir(opts.out_dir, suite.name, str(device))
        meta = {
            "tool": "hwprof", "version": __version__, "schema_version": SCHEMA_VERSION,
            "command": opts.command, "suite": {**suite.resolved(), "raw": suite.raw},
            "device": str(device), "seed": opts.seed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    policy = Policy(budget_s=suite.budget_s, ci_target=suite.ci_target, warmup_s=suite.warmup_s,
                    min_window_s=suite.min_window_s)
    timer = timer_for(device, opts.flush_l2)
    meta.update({
        "status": "running", **_environment(device, info),
        "timer": timer.name,
        "flush_l2": opts.flush_l2,
        "energy": {"source": meter.source, "description": meter.describe(), "fallbacks": meter_notes},
        "policy": policy.__dict__,
        "peak_table": {p: v.__dict__ for p, v in info.peaks.items()},
    })
    write_json(run_dir / "run.json", meta)

    torch.manual_seed(opts.seed)
    monitor = Monitor(device)
    writer = ResultsWriter(run_dir / "results.csv")
    t_start = time.perf_counter()
    measured = 0.0
    todo = [s for s in suite.specs if s.config_id not in done]
    status = "failed"
    try:
        with _sigterm_as_interrupt():
            warm = opts.device_warmup_s if opts.device_warmup_s is not None else (3.0 if device.type == "cuda" else 0.5)
            device_warmup(device, warm)
            if "idle_power_w" not in meta:
                meta["idle_power_w"] = {meter.source: idle_power(meter, opts.idle_s)}
            with _progress(opts.progress, len(suite.specs), len(done)) as advance:
                for spec in todo:
                    reference = done.get(reference_of(spec).config_id)
                    row, window = measure_spec(spec, device, info, timer, meter, monitor, policy, opts.seed, reference)
                    writer.append(row)
                    done[spec.config_id] = row
                    measured += window
                    advance(spec.config_id)
            status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise Interrupted(run_dir) from None
    finally:
        writer.close()
        meter.close()
        wall = time.perf_counter() - t_start
        meta["status"] = status
        meta["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta["wall_s"] = meta.get("wall_s", 0.0) + wall
        meta["measured_s"] = meta.get("measured_s", 0.0) + measured
        write_json(run_dir / "run.json", meta)
    return RunResult(run_dir, read_results(run_dir / "results.csv"), meta)


def _row_from_record(rec: dict) -> Row:
    from dataclasses import fields
    kw = {}
    for f in fields(Row):
        key = "pass" if f.name == "pass_" else f.name
        v = rec.get(key)
        if isinstance(v, float) and math.isnan(v):
            v = None
        kw[f.name] = v
    return Row(**kw)


@contextmanager
def _progress(enabled: bool, total: int, completed: int):
    if not enabled:
        yield lambda _desc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    columns = [TextColumn("[bold]{task.description:<48.48}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("measuring", total=total, completed=completed)
        yield lambda desc: progress.update(task, advance=1, description=desc)


def run_suite(suite: str = "quick", **kwargs) -> pd.DataFrame:
    """Python API: run a suite and return its results as a DataFrame (the run directory is kept too)."""
    kwargs.setdefault("progress", False)
    if "out_dir" in kwargs:
        kwargs["out_dir"] = Path(kwargs["out_dir"])
    result = execute(RunOptions(suite=suite, **kwargs))
    df = result.results
    df.attrs["run_dir"] = str(result.run_dir)
    return df


def load_run(path: str | Path) -> pd.DataFrame:
    """Read a run directory's results.csv as a DataFrame (run.json metadata in df.attrs['meta'])."""
    meta = read_run_json(Path(path))
    df = read_results(Path(path) / "results.csv")
    df.attrs["meta"] = meta
    df.attrs["run_dir"] = str(path)
    return df
