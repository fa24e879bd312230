"""The sweep: measure each configuration of a session and hand each finished row on.

One configuration's failure (exception, out-of-memory, NaN output, a meter that stops) becomes an
`error` row and the sweep goes on; Ctrl-C/SIGTERM stop after the last finished row, and a resumed
session completes the rest without repeating it.
"""
from __future__ import annotations

import gc
import signal
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from hwprof import kernels
from hwprof.kernels.build import estimate_bytes
from hwprof.kernels.case import all_finite
from hwprof.kernels.schemes import compute_precision
from hwprof.kernels.spec import Spec, reference_of
from hwprof.measuring.contention import LoadProbe, nvml_other_processes, quiet_check, wait_for_quiet
from hwprof.measuring.devices import Sensors, device_current, free_memory, usable_cpus
from hwprof.measuring.measure import device_warmup, idle_power
from hwprof.measuring.rounds import measure_rounds
from hwprof.running.modelplan import model_tags
from hwprof.running.results import ResultsWriter, Row, read_results
from hwprof.running.roofs import Roofs, get_roofs
from hwprof.running.rows import base_row, failure_reason, ok_row
from hwprof.running.session import RunOptions, Session, close_session, open_session

# A progress display: given (total, already done), a context yielding a callback for each finished row.
Progress = Callable[[int, int], AbstractContextManager[Callable[[Row], None]]]


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after flushing; its run directory can be resumed."""

    def __init__(self, run_dir: Path, verb: str = "run"):
        super().__init__(f"interrupted; the run directory {run_dir} can be resumed")
        self.run_dir, self.verb = run_dir, verb


@dataclass
class RunResult:
    run_dir: Path
    results: pd.DataFrame
    meta: dict


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


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class SweepTools:
    """What the sweep keeps between configurations: sensors, the load probe, and the last reference case
    (one reference serves every configuration of its kernel and shape, interleaved with each)."""
    sensors: Sensors
    probe: LoadProbe
    ref_id: str | None = None
    ref_case: kernels.Case | None = None
    ref_batch: int = 0                 # the reference's calibrated batch, kept while it stays warm

    def reference_case(self, spec: Spec, s: Session, reference: Row | None) -> kernels.Case | None:
        ref_spec = reference_of(spec)
        if ref_spec.config_id == spec.config_id or reference is None or reference.status != "ok":
            return None
        if self.ref_id != ref_spec.config_id:
            self.drop_reference()
            self.ref_id = ref_spec.config_id
            try:
                self.ref_case, _ = kernels.build_case(ref_spec, s.device, s.seed)
            except Exception:        # measured before, so this is rare; the row then falls back to unpaired hef
                self.ref_case = None
        return self.ref_case

    def drop_reference(self) -> None:
        self.ref_id = self.ref_case = None
        self.ref_batch = 0


def make_tools(s: Session) -> SweepTools:
    gpu = None
    if s.device.type == "cuda":
        try:
            from hwprof.measuring.nvml import open_device
            nvml, target = open_device(s.device)
            gpu = nvml_other_processes(nvml, target.handle)
        except Exception:
            pass                           # no NVML: contention is judged on the CPU side only
    return SweepTools(Sensors(s.device), LoadProbe(usable_cpus(), torch.get_num_threads(), gpu))


def measure_spec(spec: Spec, s: Session, tools: SweepTools, reference: Row | None) -> tuple[Row, float]:
    """Measure one configuration; never raises for the configuration's own failures.
    Returns the row and the seconds spent sampling it."""
    need = estimate_bytes(spec)
    free = free_memory(s.device)
    if need > free:
        return base_row(spec, s.device, "error", f"skipped: needs about {need / 2**30:.1f} GiB, "
                                                 f"{free / 2**30:.1f} GiB free on {s.device}"), 0.0
    try:
        with device_current(s.device):       # kernels, events and the energy window all on this device
            return _measure_on_device(spec, s, tools, reference)
    except KeyboardInterrupt:
        raise
    except Exception as e:       # one configuration's failure must not lose the others
        tools.drop_reference()
        _release(s.device)       # after an out-of-memory especially: give the next configuration room
        return base_row(spec, s.device, "error", failure_reason(e)), 0.0
    finally:
        if s.device.type == "cuda":
            torch.cuda.empty_cache()


def _measure_on_device(spec: Spec, s: Session, tools: SweepTools, reference: Row | None) -> tuple[Row, float]:
    case = out = None
    try:
        try:
            case, out = kernels.build_case(spec, s.device, s.seed)
        except kernels.Unsupported as e:
            return base_row(spec, s.device, "unsupported", str(e)), 0.0
        if not all_finite(out):
            return replace(base_row(spec, s.device, "error", "output contains NaN/Inf; no rate is reported"),
                           flags="nonfinite"), 0.0
        rel_error = case.rel_error(out)
        out = None
        ref_case = tools.reference_case(spec, s, reference)
        before = tools.sensors.snapshot()
        m = measure_rounds(case.run, s.timer, s.meter, s.policy, probe=tools.probe, context=case.context,
                           ref_fn=ref_case.run if ref_case else None,
                           ref_context=ref_case.context if ref_case else nullcontext, ref_batch=tools.ref_batch)
        tools.ref_batch = m.reference_batch
        after = tools.sensors.snapshot()
        return ok_row(spec, case, m, s.device, s.info, rel_error, reference, before, after, s.roofs), m.sampled_s
    finally:
        case = out = None        # drop the inputs before the next configuration allocates its own


def sweep(s: Session, on_row: Callable[[Row], None], notify: Callable[[str], None]) -> None:
    """Check the machine is quiet, warm the device, measure idle power once per run, then every
    configuration not yet done. Each row goes to results.csv (fsynced), then to on_row; sampling time adds
    up in s.measured_s. A row measured while the machine was busy is measured again once it is quiet."""
    cpus = usable_cpus()
    if s.opts.quiet_check_s > 0:
        with _measurement_window(s):
            qc = (wait_for_quiet(cpus, s.opts.wait_quiet_s, s.opts.quiet_check_s) if s.opts.wait_quiet_s > 0
                  else quiet_check(cpus, s.opts.quiet_check_s))
        s.meta.setdefault("quiet_checks", []).append(qc.to_json())
        if not qc.quiet:
            names = ", ".join(f"{n.name} (pid {n.pid}, {n.cores:.2f} cores)" for n in qc.top) or "unknown processes"
            notify(f"the machine is not quiet: other processes use {qc.other_cores:.2f} cores "
                   f"(steal {qc.steal_frac:.0%}): {names}; rows measured beside them are flagged `contended`")
    warm = s.opts.device_warmup_s if s.opts.device_warmup_s is not None else (3.0 if s.device.type == "cuda" else 0.5)
    device_warmup(s.device, warm)
    if s.opts.roofs:             # right after the warm-up: an idle second first would start the sweep on cold clocks
        with _measurement_window(s):
            s.roofs = _roofs(s, notify)
    if "idle_power_w" not in s.meta:
        with _measurement_window(s):
            s.meta["idle_power_w"] = {s.meter.source: idle_power(s.meter, s.opts.idle_s)}
    torch.manual_seed(s.seed)
    tools = make_tools(s)
    writer = ResultsWriter(s.run_dir / "results.csv")
    counts = s.meta.setdefault("contention", {"contended_rows": 0, "remeasured_rows": 0})
    tags = model_tags(s.suite.models)
    try:
        for spec in [x for x in s.suite.specs if x.config_id not in s.done]:
            reference = s.done.get(reference_of(spec).config_id)
            row, sampled = measure_spec(spec, s, tools, reference)
            s.measured_s += sampled
            if "contended" in row.flags.split(",") and s.opts.quiet_check_s > 0 and \
                    _quiet_now(s, cpus):
                counts["remeasured_rows"] += 1          # the neighbour has gone: measure it again, once
                row, sampled = measure_spec(spec, s, tools, reference)
                s.measured_s += sampled
            counts["contended_rows"] += "contended" in row.flags.split(",")
            row.model = tags.get(spec.config_id, "")
            writer.append(row)
            s.done[spec.config_id] = row
            on_row(row)
    finally:
        writer.close()


def _roofs(s: Session, notify: Callable[[str], None]) -> Roofs:
    """The roofs this run's rows are placed under: a resumed run keeps its own; otherwise the machine's
    cached ones, with any precision of this suite they lack measured now."""
    if "roofs" in s.meta:
        return Roofs.from_json(s.meta["roofs"])
    precisions = ["fp32"] + [compute_precision(spec.precision) for spec in s.suite.specs]
    roofs = get_roofs(s.info, s.device, s.timer, precisions, s.opts.remeasure_roofs, notify=notify)
    s.meta["roofs"] = roofs.to_json()
    return roofs


@contextmanager
def _measurement_window(s: Session):
    """A probe or energy window outside the configurations' own: measurement time, not overhead."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        s.measured_s += time.perf_counter() - t0


def _quiet_now(s: Session, cpus: list[int]) -> bool:
    with _measurement_window(s):
        return quiet_check(cpus, min(0.5, s.opts.quiet_check_s)).quiet


def execute(opts: RunOptions, progress: Progress | None = None,
            notify: Callable[[str], None] | None = None) -> RunResult:
    """Open (or resume) a session, sweep it, close it; Interrupted when stopped by a signal.
    `notify` receives warnings for people (the machine is busy) as the run goes."""
    session = open_session(opts)
    t_start = time.perf_counter()
    status = "failed"
    display = progress(len(session.suite.specs), len(session.done)) if progress else nullcontext(lambda row: None)
    try:
        with _sigterm_as_interrupt(), display as on_row:
            sweep(session, on_row, notify or (lambda text: None))
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise Interrupted(session.run_dir) from None
    finally:
        close_session(session, status, time.perf_counter() - t_start)
    return RunResult(session.run_dir, read_results(session.run_dir / "results.csv"), session.meta)
