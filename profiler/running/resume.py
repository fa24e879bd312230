"""What `--resume` checks before it trusts a run directory: run.json against its schema, the flags that would
change the resumed run's method (refused unless they match the original's), and results.csv record by record
(a torn, garbage or duplicate record, or a second header, is set aside in results.rejected.csv, said in one
line, and its configuration measured again, or rebuilt from its rounds in rounds.jsonl)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from hwprof.errors import BadInput
from hwprof.running.results import ALL_COLUMNS, NUMERIC_COLUMNS, Row, rewrite_records

REJECTED = "results.rejected.csv"
STATUSES = ("ok", "unsupported", "error")


def _is(v, kind) -> bool:
    return isinstance(v, kind) and not isinstance(v, bool) if kind is not bool else isinstance(v, bool)


def _positive(v) -> bool:
    return _is(v, (int, float)) and math.isfinite(v) and v > 0


# run.json's keys a resume reads, with what each must be
SCHEMA = {
    "device": lambda v: _is(v, str), "status": lambda v: _is(v, str), "seed": lambda v: _is(v, int) and v >= 0,
    "threads_requested": lambda v: v is None or (_is(v, int) and v > 0), "suite": lambda v: isinstance(v, dict),
    "suite.raw": lambda v: isinstance(v, dict), "suite.source": lambda v: _is(v, str),
    "suite.config_ids": lambda v: isinstance(v, list) and all(_is(x, str) for x in v),
    "suite.budget_s": _positive, "suite.ci_target": _positive,
    "energy.source": lambda v: _is(v, str), "flush_l2": lambda v: isinstance(v, bool),
}


def check_meta(meta: dict, where: Path) -> None:
    """BadInput naming the first key of run.json that is missing or of the wrong kind."""
    for key, ok in SCHEMA.items():
        v: object = meta
        for part in key.split("."):
            v = v.get(part, KeyError) if isinstance(v, dict) else KeyError
        if v is KeyError:
            raise BadInput(f"{where}/run.json: {key} is missing; this directory cannot be resumed")
        if not ok(v):
            raise BadInput(f"{where}/run.json: {key} = {v!r} is not what hwprof wrote; this directory cannot be resumed")


def check_method(meta: dict, where: Path, asked: dict) -> None:
    """Refuse a flag that would make the resumed rows another method's: `asked` maps run.json's figure
    (threads, seed, budget_s, ci_target, energy, flush_l2) to what this invocation asked (None: not asked)."""
    stored = {"threads": meta.get("threads_requested"), "seed": meta.get("seed"),
              "budget_s": meta["suite"]["budget_s"], "ci_target": meta["suite"]["ci_target"],
              "energy": meta["energy"]["source"], "flush_l2": meta.get("flush_l2", False)}
    names = {"threads": "--threads", "seed": "--seed", "budget_s": "--budget-s", "ci_target": "--ci-target",
             "energy": "--energy", "flush_l2": "--flush-l2"}
    for key, value in asked.items():
        if value is None or value == stored[key]:
            continue
        raise BadInput(f"resume {where}: it was measured with {key} = {stored[key]!r}, and {key} = {value!r} would mix "
                       f"two methods in one table; resume without {names[key]}, or start a new run")


def _record_ok(rec: dict, known: set[str]) -> bool:
    if rec.get("config_id") not in known or rec.get("status") not in STATUSES:
        return False
    for col in NUMERIC_COLUMNS:
        v = rec.get(col, "")
        if v not in ("", None):
            try:
                float(v)
            except ValueError:
                return False
    if rec["status"] == "ok":
        try:
            return float(rec.get("time_s_median") or "nan") > 0
        except ValueError:
            return False
    return True


def verify_results(path: Path, known: set[str]) -> tuple[dict[str, Row], int]:
    """results.csv's valid rows by config_id, and how many records were set aside (REJECTED beside it)."""
    text = path.read_text(errors="replace")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]               # a torn last line: never whole
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if not header or not set(header) <= set(ALL_COLUMNS) or "config_id" not in header:
        raise BadInput(f"{path}: not a hwprof results.csv (its header is not hwprof's); this directory cannot be resumed")
    keep: dict[str, dict] = {}
    rejected: list[list[str]] = []
    for fields in reader:
        rec = dict(zip(header, fields))
        if len(fields) != len(header) or fields == header or not _record_ok(rec, known) or rec["config_id"] in keep:
            rejected.append(fields)
            continue
        keep[rec["config_id"]] = rec
    if rejected:
        with open(path.parent / REJECTED, "a", newline="") as fh:
            csv.writer(fh).writerows(rejected)
        rewrite_records(path, list(keep.values()))
    rows = {}
    for cid, rec in keep.items():
        typed = {c: (float(rec[c]) if rec.get(c) not in ("", None) else None) if c in NUMERIC_COLUMNS else rec.get(c, "")
                 for c in ALL_COLUMNS}
        for c in ("logical_flops", "physical_flops", "repeats", "batch", "rounds", "bytes_moved", "weight_bytes",
                  "rounds_remeasured"):
            if typed.get(c) is not None:
                typed[c] = int(typed[c])
        rows[cid] = Row.from_record(typed)
    return rows, len(rejected)
