"""The sweep: measure each configuration of a session and hand each finished row on.

One configuration's failure (exception, out-of-memory, NaN output, a meter that stops) becomes an
`error` row and the sweep goes on; Ctrl-C/SIGTERM stop after the last finished block of passes, and a
resumed session completes the rest without repeating it.
"""
from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from hwprof.errors import OutputError
from hwprof.kernels.quantized import torchao_version
from hwprof.kernels.schemes import compute_precision, is_scheme
from hwprof.measuring.contention import LoadProbe, nvml_other_processes, quiet_check, wait_for_quiet
from hwprof.kernels.spec import MatmulSpec
from hwprof.measuring.cpu import cpu_peak_table, usable_cpus
from hwprof.measuring.devices import Sensors, free_memory
from hwprof.measuring.trace import import_profiler, warm_call_logs, warm_libraries
from hwprof.measuring.measure import device_warmup, idle_power
from hwprof.running.baseline import import_quantiles, load_baseline, record_run
from hwprof.running.blocks import measure_block, plan_blocks, plan_families
from hwprof.running.modelplan import model_tags
from hwprof.running import journal
from hwprof.running.interrupts import Interrupted, check, stop_at_round_end
from hwprof.running.results import ResultsWriter, Row, read_results
from hwprof.running.roofs import Roofs, get_roofs, raise_roofs, roofs_missing
from hwprof.running.rows import placed
from hwprof.running.session import RunOptions, Session, close_session, open_session

@dataclass
class Listener:
    """What a progress display hears: each finished row, and between rows how far the sweep has got."""
    row: Callable[[Row], None] = lambda row: None
    # configurations done so far, counting the unfinished ones of the block by their share of rounds, and
    # what is being measured; rows arrive only when their block ends
    advance: Callable[[float, str], None] = lambda completed, label: None


# A progress display: given (total, already done), a context yielding its listener.
Progress = Callable[[int, int], AbstractContextManager[Listener]]


@dataclass
class RunResult:
    run_dir: Path
    results: pd.DataFrame
    meta: dict


@dataclass
class SweepTools:
    """What the sweep keeps between blocks: clock/temperature sensors and the load probe."""
    sensors: Sensors
    probe: LoadProbe


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


def sweep(s: Session, listener: Listener, notify: Callable[[str], None]) -> None:
    """Check the machine is quiet, warm the device, measure idle power once per run, then every
    configuration not yet done, block by block in interleaved passes (running.blocks). Each row goes to
    results.csv (fsynced), then to the listener; sampling time adds up in s.measured_s. A round measured while
    the machine was busy is measured again (measuring.rounds)."""
    cpus = usable_cpus()
    if s.opts.quiet_check_s > 0:
        importing = _import_in_background(s)
        with _measurement_window(s):
            qc = (wait_for_quiet(cpus, s.opts.wait_quiet_s, s.opts.quiet_check_s) if s.opts.wait_quiet_s > 0
                  else quiet_check(cpus, s.opts.quiet_check_s))
        s.meta.setdefault("quiet_checks", []).append(qc.to_json())
        for thread in importing:
            thread.join()                # done before idle power is read, and before anything is printed
        if not qc.quiet:
            names = ", ".join(f"{n.name} (pid {n.pid}, {n.cores:.2f} cores)" for n in qc.top) or "unknown processes"
            notify(f"the machine is not quiet: other processes use {qc.other_cores:.2f} cores "
                   f"(steal {qc.steal_frac:.0%}): {names}; rounds measured beside them are measured again, "
                   f"and rows that stay busy are flagged `contended`")
    if "idle_power_w" not in s.meta:    # while the device is still idle from the quiet check, not hot from work
        with _measurement_window(s):
            s.meta["idle_power_w"] = {s.meter.source: idle_power(s.meter, s.opts.idle_s)}
    # Clocks settle under load: warm up right before the first thing measured. A GPU needs it always (building
    # its cases is brief); a CPU only before measuring roofs, since building and warming every case of the
    # first block keeps it busy for seconds before its first round.
    if s.device.type == "cuda" or (s.opts.roofs and _roofs_to_measure(s, notify)):
        warm = s.opts.device_warmup_s if s.opts.device_warmup_s is not None else (3.0 if s.device.type == "cuda" else 0.5)
        device_warmup(s.device, warm)
    warm_libraries(s.device)             # their one-time start-up, before the first traced call
    if s.opts.roofs:
        with _measurement_window(s):
            s.roofs = _roofs(s, notify)
    _refresh_peaks(s)
    if s.opts.baseline:
        s.baseline = load_baseline(s.info, notify)
        s.meta["machine_history"] = {"fingerprint": s.baseline.fingerprint, "runs": len(s.baseline.runs)}
    check(s.stop)
    if s.rejected_rows:
        notify(f"results.csv held {_records(s.rejected_rows)} that are not whole rows of this run (torn, garbage, "
               f"a second header or a repeated id): set aside in results.rejected.csv; those configurations are "
               f"measured again")
    s.replay = journal.read(s.run_dir, s.journal_key, {spec.config_id for spec in s.suite.specs} - set(s.done))
    if s.replay.rejected:
        notify(f"{journal.FILE} held {_records(s.replay.rejected)} that are not whole records of this run (a torn "
               f"line, garbage, or another suite's): set aside in {journal.REJECTED}; what they held is measured again")
    s.journal = journal.Journal(s.run_dir, s.journal_key)
    torch.manual_seed(s.seed)
    tools = make_tools(s)
    writer = ResultsWriter(s.run_dir / "results.csv")
    counts = s.meta.setdefault("contention", {"contended_rows": 0, "remeasured_rows": 0})
    counts.setdefault("discarded_rounds", 0)
    tags = model_tags(s.suite.models, s.suite.specs)
    pending = [x for x in s.suite.specs if x.config_id not in s.done]
    added: dict = {"times": {}, "hefs": {}, "energy": {}}     # what this run adds to the machine's history
    try:
        blocks = plan_blocks(plan_families(pending), s.policy, free_memory(s.device))
        for i, block in enumerate(blocks):
            before = len(s.done)
            label = f"block {i + 1} of {len(blocks)}, pass " if len(blocks) > 1 else "pass "

            def on_pass(passes: int, completed: float, before=before, label=label) -> None:
                listener.advance(before + completed, f"{label}{passes}")

            measured = _raise_roofs(s, measure_block(block, s, tools.sensors, tools.probe, on_pass), notify)
            for row in _against_baseline(s, block, measured, added, notify):
                counts["contended_rows"] += "contended" in row.flags.split(",")
                counts["remeasured_rows"] += bool(row.rounds_remeasured)
                counts["discarded_rounds"] += row.rounds_remeasured or 0
                row.model = tags.get(row.config_id, "")
                writer.append(row)
                s.done[row.config_id] = row
                listener.row(row)
    finally:
        writer.close()
    if s.baseline is not None and (added["times"] or added["hefs"]):     # a complete sweep joins the history
        record_run(s.baseline, s.run_dir.name, added["times"], added["hefs"], added["energy"])


def _records(n: int) -> str:
    return f"{n} record{'' if n == 1 else 's'}"


def _against_baseline(s: Session, block: list, measured: list[Row], added: dict,
                      notify: Callable[[str], None]) -> list[Row]:
    """The block's rows judged against this machine's history (running.baseline), and what they add to it."""
    if s.baseline is None:
        return measured
    j = s.baseline.judge(measured, {f.reference.config_id for f in block}, s.policy.confidence)
    added["times"].update(j.times)
    added["hefs"].update(j.hefs)
    for source, hefs in j.energy_hefs.items():
        added["energy"].setdefault(source, {}).update(hefs)
    checks = s.meta.setdefault("history_checks", {"compared_rows": 0, "off_history_rows": 0, "widened_rows": 0})
    checks["compared_rows"] += j.compared
    checks["off_history_rows"] += len(j.off)
    checks["widened_rows"] = checks.get("widened_rows", 0) + j.widened
    if j.state is not None:
        s.meta.setdefault("machine_state", []).append(j.state.to_json())
        if j.state.slow:
            notify(f"this machine's references ran {j.state.slowdown:.0%} slower than in its quiet runs (median "
                   f"of {len(j.state.ratios)} references against its history): its host may be busier than usual "
                   f"in ways the machine cannot see, and hef may differ from a quiet run by more than its "
                   f"interval; rows flagged `slow-machine`")
    if j.off:
        notify(f"{len(j.off)} rows have a hef whose interval lies outside every value of this machine's last runs "
               f"(flagged `off-history`): {', '.join(j.off[:3])}{' ...' if len(j.off) > 3 else ''}")
    return j.rows


def _import_in_background(s: Session) -> list[threading.Thread]:
    """Start what the run will need later and would otherwise do after the quiet check: importing torchao
    (about a second, when the suite has scheme rows), scipy's quantiles (for the history) and what the
    profiler loads at its first use; and, beside them, MKL's call-log start-up (measuring.impl). They run
    during the quiet check's idle second: this process's work, which the check leaves out of what other
    processes use."""
    todo = ([torchao_version] if any(is_scheme(spec.precision) for spec in s.suite.specs) else []) + \
        ([import_quantiles] if s.opts.baseline else []) + [import_profiler]
    threads = [threading.Thread(target=lambda: [f() for f in todo], name="hwprof-import", daemon=True),
               threading.Thread(target=warm_call_logs, name="hwprof-call-logs", daemon=True)]
    for thread in threads:
        thread.start()
    return threads


def _roof_wants(s: Session) -> dict[str, list]:
    """Each precision the run computes in (fp32 always), with the dense matmul shapes it runs in it: the
    compute sweep tries those too, since a machine's best shape need not be square."""
    wants: dict[str, list] = {"fp32": []}
    for spec in s.suite.specs:
        p = compute_precision(spec.precision)
        shapes = wants.setdefault(p, [])
        if isinstance(spec, MatmulSpec) and spec.sparsity.pattern == "dense" and spec.precision == p \
                and spec.pass_ == "fwd" and list(spec.shape) not in shapes:
            shapes.append(list(spec.shape))
    return wants


def _roofs_to_measure(s: Session, notify: Callable[[str], None]) -> bool:
    """Whether getting this run's roofs measures anything (none kept by a resumed run, or cached, for some)."""
    return "roofs" not in s.meta and roofs_missing(s.info, _roof_wants(s), s.opts.remeasure_roofs, notify)


def _refresh_peaks(s: Session) -> None:
    """A CPU's theoretical peaks from a clock no slower than its measured roofs need (measuring.devices)."""
    if s.device.type != "cpu" or s.info.cpu is None:
        return
    rates = {p: r.flops_per_s for p, r in s.roofs.compute.items() if r.flops_per_s} if s.roofs else None
    s.info.peaks, s.meta["cpu_clock"] = cpu_peak_table(s.info.cpu, rates)
    s.meta["peak_table"] = {p: v.__dict__ for p, v in s.info.peaks.items()}


def _raise_roofs(s: Session, rows: list[Row], notify: Callable[[str], None]) -> list[Row]:
    """A block's rows that beat their compute roof beyond their interval raise it (running.roofs); the peaks
    follow, and the block's rows are placed again under both."""
    if s.roofs is None:
        return rows
    raised = raise_roofs(s.roofs, rows, s.run_dir.name)
    if not raised:
        return rows
    notify(f"rows of this run beat the measured roofs, which are raised: {'; '.join(raised)}")
    s.meta["roofs"] = s.roofs.to_json()
    s.meta.setdefault("roofs_raised", []).extend(raised)
    _refresh_peaks(s)
    return [placed(r, s.info, s.roofs) if r.status == "ok" else r for r in rows]


def _roofs(s: Session, notify: Callable[[str], None]) -> Roofs:
    """The roofs this run's rows are placed under: a resumed run keeps its own; otherwise the machine's
    cached ones, with any precision of this suite they lack measured now."""
    if "roofs" in s.meta:
        return Roofs.from_json(s.meta["roofs"])
    roofs = get_roofs(s.info, s.device, s.timer, _roof_wants(s), s.opts.remeasure_roofs, notify=notify)
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


def _kept(s: Session) -> tuple[int, int]:
    """Rounds kept in the journal for configurations whose rows are not written yet, and how many those are."""
    pending = {spec.config_id for spec in s.suite.specs} - set(s.done)
    rec = journal.read(s.run_dir, s.journal_key, pending)
    ids = {w["id"] for rs in rec.rounds.values() for r in rs if r["kept"] for w in r["windows"]} & pending
    return rec.kept, len(ids)


def execute(opts: RunOptions, progress: Progress | None = None,
            notify: Callable[[str], None] | None = None) -> RunResult:
    """Open (or resume) a session, sweep it, close it; Interrupted when stopped by a signal.
    `notify` receives warnings for people (the machine is busy) as the run goes."""
    session = open_session(opts)
    t_start = time.perf_counter()
    status = "failed"
    display = progress(len(session.suite.specs), len(session.done)) if progress else nullcontext(Listener())
    try:
        with stop_at_round_end(session.stop), display as listener:
            sweep(session, listener, notify or (lambda text: None))
        status = "complete"
    except OutputError as e:             # the disk is full or read-only: what was measured stays, resumable
        e.run_dir = session.run_dir
        raise
    except KeyboardInterrupt:
        status = "interrupted"
        if session.journal is not None:
            session.journal.close()
            session.journal = None
        rounds, configs = _kept(session)
        raise Interrupted(session.run_dir, rows=len(session.done), rounds=rounds, configs=configs) from None
    finally:
        if session.journal is not None:
            session.journal.close()
        close_session(session, status, time.perf_counter() - t_start)
    return RunResult(session.run_dir, read_results(session.run_dir / "results.csv"), session.meta)
