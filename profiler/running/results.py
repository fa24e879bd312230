"""The results.csv schema: one typed Row per configuration, appended and flushed as it is measured."""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from hwprof.errors import BadInput

SCHEMA_VERSION = 1


@dataclass
class Row:
    """One results.csv row; the field order is the column order (`pass_` is written as `pass`)."""
    config_id: str
    kernel: str
    shape: str
    precision: str
    sparsity: str
    density: float
    backend: str
    pass_: str
    device: str
    status: str
    reason: str = ""
    logical_flops: int | None = None
    physical_flops: int | None = None
    time_s_median: float | None = None
    time_s_ci_low: float | None = None
    time_s_ci_high: float | None = None
    time_rel_iqr: float | None = None
    repeats: int | None = None
    energy_j: float | None = None
    power_w: float | None = None
    energy_source: str = "none"
    logical_flops_per_s: float | None = None
    physical_flops_per_s: float | None = None
    logical_flops_per_j: float | None = None
    hef_time: float | None = None
    hef_energy: float | None = None
    doublings_time: float | None = None
    doublings_energy: float | None = None
    peak_flops_per_s: float | None = None
    mfu: float | None = None
    rel_error: float | None = None
    flags: str = ""
    # --- added since the first release (README, "results.csv") ---
    pruning_error: float | None = None          # pruned product vs unpruned, fp64 (sparse matmul only)
    bytes_moved: int | None = None              # dense operand + result bytes in storage dtype
    arithmetic_intensity: float | None = None   # logical_flops / bytes_moved (roofline x-axis)
    peak_source: str = ""                       # where peak_flops_per_s comes from
    batch: int | None = None                    # calls per timed batch
    window_s: float | None = None               # wall time of the energy window
    clock_mhz_start: float | None = None
    clock_mhz_end: float | None = None
    temp_c_start: float | None = None
    temp_c_end: float | None = None
    # --- trust (README, "Trust") ---
    cpu_other_cores: float | None = None        # CPU used by other processes on this run's CPUs, in cores
    cpu_steal_frac: float | None = None         # share of the window the hypervisor gave to other guests
    hef_time_ci_low: float | None = None        # interval of hef_time over paired rounds
    hef_time_ci_high: float | None = None
    hef_energy_ci_low: float | None = None      # the same for energy, where the meter resolves a round
    hef_energy_ci_high: float | None = None
    rounds: int | None = None                   # paired rounds measured
    roof_flops_per_s: float | None = None       # measured roofline at this row's physical intensity
    roof_frac: float | None = None              # physical FLOP/s / roof_flops_per_s
    weight_bytes: int | None = None             # the stored weight (B, or a sparse row's pruned operand), scales included
    model: str = ""                             # the [[model]] step(s) this configuration belongs to ("a+b" if several)
    host: str = ""                              # fleet runs: the node's host name
    node_id: str = ""                           # fleet runs: the Ray node (and logical node) that measured it
    device_uuid: str = ""                       # fleet runs: NVML UUID on a GPU; CPU model @ host on a CPU
    hef_time_run_sd: float | None = None        # sd of ln hef_time over this machine's last runs, in the interval
    rounds_remeasured: int | None = None        # rounds dropped and measured again (busy or slow machine)
    hef_energy_run_sd: float | None = None      # the same as hef_time_run_sd for hef_energy, by one meter
    impl: str = ""                              # the library kernel(s) that ran, from one traced call
    cost_s: float | None = None                 # what this configuration cost the run: probe, warm-up, windows

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


def header_text() -> str:
    """results.csv's first line."""
    buf = io.StringIO()
    csv.writer(buf).writerow(ALL_COLUMNS)
    return buf.getvalue()


def column_name(field_name: str) -> str:
    return "pass" if field_name == "pass_" else field_name


# The columns, in order, are the Row's fields: one definition. DESIGN.md's contract is the prefix up to
# `flags`; what follows was added since and is documented in the README.
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
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _drop_partial_last_line(self.path)
            _upgrade_header(self.path)
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=ALL_COLUMNS)
        if new:
            self._writer.writeheader()
            self._sync()

    def append(self, row: Row) -> None:
        self._writer.writerow({k: _cell(v) for k, v in row.as_dict().items()})
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


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
    hold, becomes NaN) and every text column text (empty, not NaN): what analysis and plots may assume."""
    df = df.copy()
    for col in NUMERIC_COLUMNS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in TEXT_COLUMNS:
        if col in df:
            df[col] = df[col].where(df[col].notna(), "").astype(str)
    return df
