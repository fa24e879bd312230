"""The results.csv schema: one typed Row per configuration, appended and flushed as it is measured."""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from hwprof.errors import BadInput, OutputError

SCHEMA_VERSION = 1


@dataclass
class Row:
    """One results.csv row; the field order is the column order (`pass_` is written as `pass`). The comment
    beside each field is its description in the manual's column reference (a test holds every field to one)."""
    config_id: str                              # stable id: kernel/shape/precision/sparsity[/backend]/pass; resume and compare match on it
    kernel: str                                 # matmul, attention, linear, conv1d, or a model's op (rmsnorm, rotary, ...) or step
    shape: str                                  # MxNxK (matmul), BxHxSqxSkxD (attention), the op's or step's own shape
    precision: str                              # fp64, fp32, tf32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, or a quantization scheme
    sparsity: str                               # dense, unstructured:D, block:B:D, 2:4; causal and window:W for attention masks
    density: float                              # share of the logical work the kernel really does (1 for dense)
    backend: str                                # attention: the SDPA backend asked for (auto: the one torch's dispatcher picked, auto:flash); matmul: empty
    pass_: str                                  # fwd, or fwd+bwd
    device: str                                 # cpu, cuda:N
    status: str                                 # ok, unsupported (with the reason) or error (exception, out-of-memory, NaN/Inf, a meter that stopped); only ok rows have rates
    reason: str = ""                            # why a row is not ok, in words
    logical_flops: int | None = None            # FLOPs of the dense, uniform-precision reference computation (DESIGN.md's conventions)
    physical_flops: int | None = None           # FLOPs the kernel really executes (sparse, causal and windowed work left out)
    time_s_median: float | None = None          # seconds per call: median over the kept rounds' windows
    time_s_ci_low: float | None = None          # lower end of the median's confidence interval (bootstrap over rounds)
    time_s_ci_high: float | None = None         # upper end of that interval
    time_rel_iqr: float | None = None           # interquartile range of the per-call times over their median
    repeats: int | None = None                  # calls timed in all
    energy_j: float | None = None               # joules per call from the energy meter (total device energy, idle included)
    power_w: float | None = None                # mean power over the energy window(s)
    energy_source: str = "none"                 # rapl, nvml, estimate (TDP x utilisation) or none
    logical_flops_per_s: float | None = None    # logical_flops / time_s_median
    physical_flops_per_s: float | None = None   # physical_flops / time_s_median
    logical_flops_per_j: float | None = None    # logical_flops / energy_j
    hef_time: float | None = None               # hidden-efficiency factor in time: median over rounds of reference time / this row's time
    hef_energy: float | None = None             # the same in energy: the reference's joules per call over this row's
    doublings_time: float | None = None         # log2(hef_time)
    doublings_energy: float | None = None       # log2(hef_energy)
    peak_flops_per_s: float | None = None       # the device's dense peak in this precision: datasheet (GPU) or cores x clock x FLOP/cycle (CPU)
    mfu: float | None = None                    # physical FLOP/s over peak_flops_per_s: never above 1 for a sparse or causal row
    rel_error: float | None = None              # ||out - ref||_F / ||ref||_F against fp64 on the same logical operands (fwd+bwd: the worst of outputs and gradients)
    flags: str = ""                             # comma-separated caveats (the flags reference); empty when the row has none
    # --- added since the first release ---
    pruning_error: float | None = None          # pruned product vs unpruned, fp64 (sparse matmul only)
    bytes_moved: int | None = None              # dense operand + result bytes in storage dtype
    arithmetic_intensity: float | None = None   # logical_flops / bytes_moved (roofline x-axis)
    peak_source: str = ""                       # where peak_flops_per_s comes from
    batch: int | None = None                    # calls per timed batch
    window_s: float | None = None               # wall time of the energy window(s) the joules come from
    clock_mhz_start: float | None = None        # device clock before the measurement (empty where no sensor reads it)
    clock_mhz_end: float | None = None          # device clock after it
    temp_c_start: float | None = None           # device temperature before the measurement
    temp_c_end: float | None = None             # device temperature after it
    # --- trust ---
    cpu_other_cores: float | None = None        # CPU used by other processes on this run's CPUs during the kept rounds, in cores
    cpu_steal_frac: float | None = None         # share of that time the hypervisor gave to other guests
    hef_time_ci_low: float | None = None        # interval of hef_time over paired rounds, widened by this machine's run-to-run spread ([1, 1] for a reference)
    hef_time_ci_high: float | None = None       # upper end of that interval
    hef_energy_ci_low: float | None = None      # the same for energy, where the meter resolves a round (else the run-to-run interval alone)
    hef_energy_ci_high: float | None = None     # upper end of that interval
    rounds: int | None = None                   # paired rounds kept (a reference: its windows, one beside each configuration a round)
    roof_flops_per_s: float | None = None       # measured roofline at this row's physical intensity: min(compute roof, intensity x memory roof)
    roof_frac: float | None = None              # physical_flops_per_s / roof_flops_per_s: the work done against what this machine sustains
    weight_bytes: int | None = None             # the stored weight (B, or a sparse row's pruned operand), scales included
    model: str = ""                             # the [[model]] step(s) this configuration belongs to ("a+b" if several)
    host: str = ""                              # fleet runs: the node's host name
    node_id: str = ""                           # fleet runs: the Ray node (and logical node) that measured it
    device_uuid: str = ""                       # fleet runs: NVML UUID on a GPU; CPU model @ host on a CPU
    hef_time_run_sd: float | None = None        # sd of ln hef_time over this machine's last runs, in the interval
    rounds_remeasured: int | None = None        # rounds dropped and measured again (busy or slow machine)
    hef_energy_run_sd: float | None = None      # the same as hef_time_run_sd for hef_energy, by one meter
    impl: str = ""                              # the library kernel(s) that ran, from one traced call (onednn:..., mkl:SGEMM, cuda:..., aten:...)
    cost_s: float | None = None                 # what this configuration cost the run: probe, warm-up, windows, its share of the reference's

    def as_dict(self) -> dict:
        """The row keyed by column name."""
        return {column_name(f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_record(cls, rec: dict) -> "Row":
        """Inverse of as_dict, from a results.csv record (pandas NaN read back as None)."""
        kw = {}
        for f in fields(cls):
            v = rec.get(column_name(f.name))
            if isinstance(v, float) and math.isnan(v):
                v = None
            kw[f.name] = v
        return cls(**kw)


# |unexplained_share| above this flags a model row `unexplained` (analysis.models): its kernels alone do not
# account for its step
UNEXPLAINED_LIMIT = 0.15

# The words of the `flags` column, each with what it means (the manual's flags reference is made from this).
FLAGS: dict[str, str] = {
    "noisy": "the rounds' own interval (before any widening by the history) is wider than the CI target",
    "few-repeats": "too few samples for an interval; the range is shown instead",
    "few-rounds": "one call is so long that the configuration's cap (twice its budget plus one call) allowed fewer "
                  "rounds than the suite's `rounds`",
    "throttled": "GPU: NVML's clock-event reasons name a power or thermal slowdown; CPU: the clock dropped by more "
                 "than 10% or the temperature rose by 10 °C or more",
    "short-window": "the energy window was shorter than the meter's minimum (its joules are unreliable)",
    "estimate": "the energy is an estimate (TDP x utilisation), not a measurement",
    "nonfinite": "the output held NaN or Inf; no rate is reported",
    "contended": "other processes (or the hypervisor's steal) used this run's CPUs, or other compute processes "
                 "the GPU, during rounds that stayed busy after being measured again",
    "stalled": "a CPU kernel's own busy cores were below 35% of its threads (its threads waited)",
    "upcast-fp32": "a 16- or 8-bit configuration computed in fp32: torch's CPU math attention upcasts, or the only "
                   "library kernel of a matmul was an fp32 GEMM",
    "reference-impl": "a library's reference or fallback kernel ran (oneDNN's ref:*, or no BLAS call at all for a "
                      "dense CPU matmul), not the hardware's fast path",
    "slow-machine": "the block's references ran 5% or more slower than this machine's quiet state (its history)",
    "off-history": "the hef's interval misses every value of this configuration's last runs on this machine",
    "unexplained": "models.csv: the measured step and the sum of its kernels measured alone differ by more than "
                   f"{UNEXPLAINED_LIMIT:.0%} of the step: the breakdown does not account for the step (caches its "
                   "weights miss, threads waking between kernels, the allocator); the step's own figures stand",
    "bimodal": "the round medians or per-round hef ratios split into two groups at a gap of 15% or more: two speeds",
}


def header_text() -> str:
    """results.csv's first line."""
    buf = io.StringIO()
    csv.writer(buf).writerow(ALL_COLUMNS)
    return buf.getvalue()


def column_name(field_name: str) -> str:
    return "pass" if field_name == "pass_" else field_name


# The columns, in order, are the Row's fields: one definition. DESIGN.md's contract is the prefix up to
# `flags`; what follows was added since and is documented in the manual (docs/reference/results.md).
ALL_COLUMNS = [column_name(f.name) for f in fields(Row)]
COLUMNS = ALL_COLUMNS[: ALL_COLUMNS.index("flags") + 1]
EXTRA_COLUMNS = ALL_COLUMNS[len(COLUMNS):]


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return str(v)


class ResultsWriter:
    """Appends rows to results.csv, flushing and fsyncing each so an interrupted run keeps every finished row."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            new = not self.path.exists() or self.path.stat().st_size == 0
            if not new:
                _drop_partial_last_line(self.path)
                _upgrade_header(self.path)
            self._fh = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=ALL_COLUMNS)
            if new:
                self._writer.writeheader()
                self._sync()
        except OSError as e:
            raise OutputError(self.path, e, self.path.parent) from None

    def append(self, row: Row) -> None:
        try:
            self._writer.writerow({k: _cell(v) for k, v in row.as_dict().items()})
            self._sync()
        except OSError as e:     # a full disk: at most a torn last row, which a resume cuts back or sets aside
            raise OutputError(self.path, e, self.path.parent) from None

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:          # the flush that failed already said so
            pass


def _drop_partial_last_line(path: Path) -> None:
    """A power loss can leave half a row; cut the file back to its last complete line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def _upgrade_header(path: Path) -> None:
    """A run written before columns were appended to the schema gets them (empty) before it is resumed,
    so old and new rows line up under one header."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames == ALL_COLUMNS or not set(reader.fieldnames or []) <= set(ALL_COLUMNS):
            return
        records = list(reader)
    _rewrite(path, records)


def drop_rows(path: Path, drop) -> int:
    """Remove the rows (raw CSV records: column -> text) for which drop(record) is true, atomically;
    returns how many went."""
    with open(path, newline="") as fh:
        records = list(csv.DictReader(fh))
    keep = [r for r in records if not drop(r)]
    if len(keep) < len(records):
        _rewrite(path, keep)
    return len(records) - len(keep)


def rewrite_records(path: Path, records: list[dict]) -> None:
    """results.csv replaced, atomically, by these raw records (column -> text) under the current header."""
    _rewrite(path, records)


def _rewrite(path: Path, records: list[dict]) -> None:
    """Replace results.csv by these records under the current header (cells a record lacks stay empty),
    fsynced before the rename, so a crash leaves the old file or the new one."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ALL_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(records)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def read_results(path: Path) -> pd.DataFrame:
    """Read results.csv, ignoring a truncated last line; BadInput if it is not a hwprof results file."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read results ({e})") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    header = next(csv.reader(io.StringIO(text)), [])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise BadInput(f"{path}: not a hwprof results.csv (missing columns: {', '.join(missing[:5])}"
                       f"{'...' if len(missing) > 5 else ''})")
    df = pd.read_csv(io.StringIO(text), dtype={"reason": str, "flags": str, "sparsity": str, "shape": str,
                                               "peak_source": str, "model": str, "precision": str,
                                               "host": str, "node_id": str, "device_uuid": str, "impl": str})
    return typed(df)


def _numeric_columns() -> list[str]:
    """The columns whose Row field is a number (int, float, or either or None)."""
    return [column_name(f.name) for f in fields(Row) if any(t in str(f.type) for t in ("int", "float"))]


NUMERIC_COLUMNS = _numeric_columns()
TEXT_COLUMNS = [c for c in ALL_COLUMNS if c not in NUMERIC_COLUMNS]


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """The table with every numeric column a number (a cell that is not one, as a torn or foreign file can
    hold, becomes NaN) and every text column text (empty, not NaN): what analysis and plots may assume. A
    column a run of an older schema lacks is there, empty, so analysis never meets a missing column."""
    df = df.copy()
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float) if col in df else float("nan")
    for col in TEXT_COLUMNS:
        df[col] = df[col].where(df[col].notna(), "").astype(str) if col in df else ""
    return df
