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
from hwprof.kernels.spec import Spec, reference_of
from hwprof.measuring.devices import Sensors, device_current, free_memory
from hwprof.measuring.measure import device_warmup, idle_power, measure
from hwprof.running.results import ResultsWriter, Row, read_results
from hwprof.running.rows import base_row, failure_reason, ok_row
from hwprof.running.session import RunOptions, Session, close_session, open_session

# A progress display: given (total, already done), a context yielding a callback for each finished row.
Progress = Callable[[int, int], AbstractContextManager[Callable[[Row], None]]]


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after flushing; its run directory can be resumed."""

    def __init__(self, run_dir: Path):
        super().__init__(f"interrupted; the run directory {run_dir} can be resumed")
        self.run_dir = run_dir


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


def measure_spec(spec: Spec, s: Session, sensors: Sensors, reference: Row | None) -> tuple[Row, float]:
    """Measure one configuration; never raises for the configuration's own failures.
    Returns the row and the seconds spent sampling it."""
    need = estimate_bytes(spec)
    free = free_memory(s.device)
    if need > free:
        return base_row(spec, s.device, "error", f"skipped: needs about {need / 2**30:.1f} GiB, "
                                                 f"{free / 2**30:.1f} GiB free on {s.device}"), 0.0
    try:
        with device_current(s.device):       # kernels, events and the energy window all on this device
            return _measure_on_device(spec, s, sensors, reference)
    except KeyboardInterrupt:
        raise
    except Exception as e:       # one configuration's failure must not lose the others
        _release(s.device)       # after an out-of-memory especially: give the next configuration room
        return base_row(spec, s.device, "error", failure_reason(e)), 0.0
    finally:
        if s.device.type == "cuda":
            torch.cuda.empty_cache()


def _measure_on_device(spec: Spec, s: Session, sensors: Sensors, reference: Row | None) -> tuple[Row, float]:
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
        with case.context():
            before = sensors.snapshot()
            m = measure(case.run, s.timer, s.meter, s.policy)
            after = sensors.snapshot()
        return ok_row(spec, case, m, s.device, s.info, rel_error, reference, before, after), m.sampled_s
    finally:
        case = out = None        # drop the inputs before the next configuration allocates its own


def sweep(s: Session, on_row: Callable[[Row], None]) -> None:
    """Warm the device, measure idle power once per run, then every configuration not yet done.
    Each row goes to results.csv (fsynced), then to on_row; sampling time adds up in s.measured_s."""
    warm = s.opts.device_warmup_s if s.opts.device_warmup_s is not None else (3.0 if s.device.type == "cuda" else 0.5)
    device_warmup(s.device, warm)
    if "idle_power_w" not in s.meta:
        s.meta["idle_power_w"] = {s.meter.source: idle_power(s.meter, s.opts.idle_s)}
    torch.manual_seed(s.seed)
    sensors = Sensors(s.device)
    writer = ResultsWriter(s.run_dir / "results.csv")
    try:
        for spec in [x for x in s.suite.specs if x.config_id not in s.done]:
            reference = s.done.get(reference_of(spec).config_id)
            row, sampled = measure_spec(spec, s, sensors, reference)
            writer.append(row)
            s.done[spec.config_id] = row
            s.measured_s += sampled
            on_row(row)
    finally:
        writer.close()


def execute(opts: RunOptions, progress: Progress | None = None) -> RunResult:
    """Open (or resume) a session, sweep it, close it; Interrupted when stopped by a signal."""
    session = open_session(opts)
    t_start = time.perf_counter()
    status = "failed"
    display = progress(len(session.suite.specs), len(session.done)) if progress else nullcontext(lambda row: None)
    try:
        with _sigterm_as_interrupt(), display as on_row:
            sweep(session, on_row)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise Interrupted(session.run_dir) from None
    finally:
        close_session(session, status, time.perf_counter() - t_start)
    return RunResult(session.run_dir, read_results(session.run_dir / "results.csv"), session.meta)
