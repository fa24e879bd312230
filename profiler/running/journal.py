"""rounds.jsonl: every round a run measures, as it is measured, so that an interrupt or a crash loses at most
the pass in flight and `--resume` measures only what is still owed.

One JSON object a line (format version VERSION):
- {"type": "journal", "v": 1, "suite": S}: the first line; S is the suite's fingerprint (its configurations,
  settings and seed), so a journal from another suite is never replayed into this one;
- {"type": "case", "id": config_id, "batch", "call_s", "cost_s", "cap_s", "first": [seconds, joules] | null,
  "rel_error", "extras", "impl"}: a configuration built, probed and warmed up (what its arm starts from);
- {"type": "round", "family": reference config_id, "kept": bool, "busy": bool, "slow": bool,
  "windows": [{"id", "samples", "calls", "wall", "joules", "recorded", "warm_s"}], "load": {...} | null}: a family's
  round, kept or dropped, with every window's per-call times, calls, seconds and joules and the load probe;
- {"type": "sensors", "family", "which": "before" | "after", "values": {...}}: clock and temperature.
Lines are written as the work happens and fsynced at the end of every pass. Reading is strict: a line that
is not a whole record of these forms (a torn last line, garbage, a record of another suite or of a
configuration the suite does not have) is set aside in rounds.rejected.jsonl and said in one line, and the
configurations it concerned are measured again.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from hwprof.errors import OutputError

VERSION = 1
FILE, REJECTED = "rounds.jsonl", "rounds.rejected.jsonl"


def _number(v, positive: bool = False, nullable: bool = False) -> bool:
    if v is None:
        return nullable
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v > 0 if positive else v >= 0))


def _window_ok(w) -> bool:
    return (isinstance(w, dict) and isinstance(w.get("id"), str) and isinstance(w.get("samples"), list)
            and w["samples"] and all(_number(x) for x in w["samples"]) and isinstance(w.get("calls"), int)
            and w["calls"] > 0 and _number(w.get("wall")) and (w.get("joules") in (None, "nan") or
                                                              _number(w["joules"]))
            and isinstance(w.get("recorded", False), bool) and _number(w.get("warm_s", 0.0)))


def valid(rec, suite: str, known: set[str]) -> bool:
    """Pure: whether a parsed line is a whole record of this journal's forms for this suite."""
    if not isinstance(rec, dict):
        return False
    kind = rec.get("type")
    if kind == "journal":
        return rec.get("v") == VERSION and rec.get("suite") == suite
    if kind == "case":
        first = rec.get("first")
        return (rec.get("id") in known and isinstance(rec.get("batch"), int) and rec["batch"] > 0
                and _number(rec.get("call_s")) and _number(rec.get("cost_s")) and _number(rec.get("cap_s"), nullable=True)
                and (first is None or (isinstance(first, list) and len(first) == 2 and _number(first[0])))
                and _number(rec.get("rel_error"), nullable=True) and isinstance(rec.get("extras", {}), dict)
                and isinstance(rec.get("impl", {}), dict))
    if kind == "round":
        return _round_ok(rec, known)
    if kind == "sensors":
        return rec.get("family") in known and rec.get("which") in ("before", "after") and isinstance(rec.get("values"), dict)
    return False


def _round_ok(rec: dict, known: set[str] | None) -> bool:
    """Pure: whether a round record is whole (its family and windows among `known` configurations, any
    where None)."""
    ws = rec.get("windows")
    return (isinstance(rec.get("family"), str) and (known is None or rec["family"] in known)
            and all(isinstance(rec.get(k), bool) for k in ("kept", "busy", "slow"))
            and isinstance(ws, list) and bool(ws)
            and all(_window_ok(w) and (known is None or w["id"] in known) for w in ws)
            and (rec.get("load") is None or isinstance(rec["load"], dict)))


@dataclass
class Replay:
    """What a journal says was measured: per configuration its case record, per family its rounds in order."""
    cases: dict[str, dict] = field(default_factory=dict)
    rounds: dict[str, list[dict]] = field(default_factory=dict)
    sensors: dict[tuple[str, str], dict] = field(default_factory=dict)
    rejected: int = 0

    @property
    def kept(self) -> int:
        return sum(r["kept"] for rs in self.rounds.values() for r in rs)


def kept_rounds(run_dir: Path) -> dict[str, list[dict]]:
    """Per family, its kept rounds in the order measured, read only (no line is set aside: analysis reads a
    finished run's journal; `read` is the runner's, which checks it against the suite)."""
    path = Path(run_dir) / FILE
    out: dict[str, list[dict]] = {}
    if not path.exists():
        return out
    for raw in path.read_bytes().split(b"\n"):
        try:
            rec = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict) and rec.get("type") == "round" and _round_ok(rec, None) and rec["kept"]:
            out.setdefault(rec["family"], []).append(rec)
    return out


def read(run_dir: Path, suite: str, known: set[str]) -> Replay:
    """The journal's valid records; the others are moved to REJECTED (a journal of another suite, whole)."""
    path = Path(run_dir) / FILE
    out = Replay()
    if not path.exists():
        return out
    lines = path.read_bytes().split(b"\n")
    good, bad = [], []
    header_ok = False
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            rec = None
        if i == 0 or not header_ok:
            header_ok = valid(rec, suite, known) and rec.get("type") == "journal"
            if not header_ok:
                bad.append(raw)
                continue
            good.append(raw)
            continue
        if not valid(rec, suite, known) or rec.get("type") == "journal":
            bad.append(raw)
            continue
        good.append(raw)
        if rec["type"] == "case":
            out.cases[rec["id"]] = rec
        elif rec["type"] == "round":
            out.rounds.setdefault(rec["family"], []).append(rec)
        else:
            out.sensors[(rec["family"], rec["which"])] = rec["values"]
    if not header_ok and good == [] and bad:          # nothing of this suite's: all of it set aside
        out.cases, out.rounds, out.sensors = {}, {}, {}
    if bad:
        with open(Path(run_dir) / REJECTED, "ab") as fh:
            fh.write(b"\n".join(bad) + b"\n")
        _rewrite(path, good)
    out.rejected = len(bad)
    return out


def _rewrite(path: Path, lines: list[bytes]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "wb") as fh:
        fh.write(b"".join(line + b"\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class Journal:
    """Appends this run's records (see the module docstring); `sync` at the end of every pass."""

    def __init__(self, run_dir: Path, suite: str):
        self.path = Path(run_dir) / FILE
        self.run_dir = Path(run_dir)
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise OutputError(self.path, e, self.run_dir) from None
        if new:
            self._write({"type": "journal", "v": VERSION, "suite": suite})
            self.sync()

    def _write(self, rec: dict) -> None:
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False, default=_plain) + "\n"
        try:
            self._fh.write(line)
            self._fh.flush()                  # in the OS's hands: survives the process being killed
        except OSError as e:                  # a full disk: a torn last line, which a resume's strict read sets aside
            raise OutputError(self.path, e, self.run_dir) from None

    def case(self, config_id: str, arm, rel_error: float | None, extras: dict, impl: dict) -> None:
        first = [arm.first.wall, arm.first.joules] if arm.first is not None else None
        self._write({"type": "case", "id": config_id, "batch": arm.batch, "call_s": arm.call_s,
                     "cost_s": arm.cost_s, "cap_s": arm.cap_s if math.isfinite(arm.cap_s) else None, "first": first,
                     "rel_error": _finite(rel_error), "extras": {k: _finite(v) for k, v in extras.items()}, "impl": impl})

    def round(self, family: str, windows, load, busy: bool, slow: bool) -> None:
        self._write({"type": "round", "family": family, "kept": not (busy or slow), "busy": busy, "slow": slow,
                     "windows": [{"id": w.arm.key, "samples": w.samples, "calls": w.calls, "wall": w.wall,
                                  "joules": _joules(w.joules), "recorded": w.recorded, "warm_s": w.warm_s}
                                 for w in windows],
                     "load": load.__dict__ if load is not None else None})

    def sensors(self, family: str, which: str, values: dict) -> None:
        self._write({"type": "sensors", "family": family, "which": which, "values": values})

    def sync(self) -> None:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as e:
            raise OutputError(self.path, e, self.run_dir) from None

    def close(self) -> None:
        """Flush and close; a disk that refuses the last flush loses at most the records since the last sync."""
        try:
            self.sync()
        except OutputError:
            pass
        finally:
            try:
                self._fh.close()
            except OSError:
                pass


def _joules(v):
    """A window's joules: None (not metered), "nan" (a reading that failed: the energy falls back to a long
    window, as it did when measured), or the number."""
    if v is None:
        return None
    return v if math.isfinite(v) else "nan"


def window_joules(v) -> float | None:
    return math.nan if v == "nan" else v


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _plain(v):
    return float(v) if isinstance(v, (int, float)) else str(v)
