"""The roofs a machine keeps in its cache (`machine_cache`, kind "roofs"): the types, their JSON, and the
strict reading that keeps a cached entry that is not a roof from ever reaching a run. Measuring them is
`running.roofs`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

from hwprof.measuring.devices import DeviceInfo
from hwprof.measuring.stream import MemoryRoof
from hwprof.running import machine_cache
from hwprof.running.efficiency import best_roof
from hwprof.running.machine_cache import fingerprint, read_cached, write_cached

METHOD_VERSION = 3          # bump when the method changes: cached roofs of another method are not reused


@dataclass(frozen=True)
class ComputeRoof:
    precision: str
    flops_per_s: float | None      # None: no kernel for this precision here (reason says why)
    shape: str = ""                # the shape that reached it
    reason: str = ""
    tried: tuple[str, ...] = ()    # shapes the sweep measured, or left out for its budget (not asked again)
    raised_by: dict | None = None  # a row of a run that beat the sweep: config_id, run, shape, from_flops_per_s


@dataclass
class Roofs:
    fingerprint: str
    machine: dict
    measured: str                  # ISO date of the first measurement
    memory: MemoryRoof
    compute: dict[str, ComputeRoof] = field(default_factory=dict)
    seconds: float = 0.0           # time spent measuring in this process (0 when all came from the cache)
    cached: bool = False

    def compute_roof(self, precision: str) -> float | None:
        """The roof a row of `precision` is held to: its own or a wider exact precision's (`best_roof`)."""
        return best_roof({p: r.flops_per_s for p, r in self.compute.items()}, precision)[0]

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "machine": self.machine, "measured": self.measured,
                "method_version": METHOD_VERSION, "memory": self.memory.to_json(),
                "compute": {p: asdict(r) for p, r in self.compute.items()},
                "seconds": self.seconds, "cached": self.cached}

    @classmethod
    def from_json(cls, d: dict) -> "Roofs":
        return cls(d["fingerprint"], d["machine"], d["measured"], MemoryRoof(**d["memory"]),
                   {p: ComputeRoof(**{**r, "tried": tuple(r.get("tried", ()))}) for p, r in d["compute"].items()},
                   d.get("seconds", 0.0), d.get("cached", False))


def machine_key(info: DeviceInfo) -> dict:
    """What a roof depends on: the machine (`machine_cache.machine_key`) and this method's version."""
    return machine_cache.machine_key(info) | {"method_version": METHOD_VERSION}


def load_cached(info: DeviceInfo, warn: Callable[[str], None] = lambda text: None) -> Roofs | None:
    """This machine's cached roofs, or None (none yet, a file that does not parse, or a memory roof that is not
    one: all measured again). A compute roof that is not valid (a rate that is not a finite positive number,
    fields of the wrong type) is left out, said through `warn`, and the file rewritten without it: that
    precision is then measured again, as if never measured; it never fails a run."""
    fp = fingerprint(machine_key(info))
    data = read_cached("roofs", fp)
    if data is None:
        return None
    roofs, problems = parse_cached(data)
    if problems:
        where = machine_cache.describe_path("roofs", fp)
        warn(f"the cached roofs in {where} hold what is not a roof ({'; '.join(problems)}): "
             + ("left out and measured again" if roofs is not None else "all measured again"))
        if roofs is not None:
            _store(roofs)
    if roofs is not None:
        roofs.cached, roofs.seconds = True, 0.0
    return roofs


def parse_cached(data: dict) -> tuple[Roofs | None, list[str]]:
    """Pure: the roofs a cached document holds, strictly, and what was wrong with it, in words. None when the
    document itself (its memory roof, its fields) is not roofs; bad compute entries are dropped one by one."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return None, ["not a JSON object"]
    head = {k: data.get(k) for k in ("fingerprint", "measured")}
    if not all(isinstance(v, str) for v in head.values()) or not isinstance(data.get("machine"), dict):
        return None, ["fingerprint, measured or machine missing or not text"]
    memory = _memory_roof(data.get("memory"))
    if memory is None:
        return None, ["the memory roof is not one"]
    compute = {}
    entries = data.get("compute")
    if not isinstance(entries, dict):
        return None, ["compute is not an object"]
    for precision, entry in entries.items():
        roof = _compute_roof(precision, entry)
        if roof is None:
            problems.append(f"compute roof {precision!r}")
        else:
            compute[precision] = roof
    return Roofs(head["fingerprint"], data["machine"], head["measured"], memory, compute), problems


def _positive_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _memory_roof(d) -> MemoryRoof | None:
    if not isinstance(d, dict) or set(d) != {f.name for f in fields(MemoryRoof)}:
        return None
    rates = ("bytes_per_s", "copy_bytes_per_s", "triad_bytes_per_s", "array_bytes", "trials")
    if not all(_positive_number(d[k]) for k in rates) or not all(isinstance(d[k], str) for k in ("kernel", "method")):
        return None
    return MemoryRoof(**d)


def _compute_roof(precision, d) -> ComputeRoof | None:
    if not isinstance(precision, str) or not isinstance(d, dict) or not set(d) <= {f.name for f in fields(ComputeRoof)}:
        return None
    rate = d.get("flops_per_s")
    tried = d.get("tried", [])
    ok = (d.get("precision") == precision and (rate is None or _positive_number(rate))
          and all(isinstance(d.get(k, ""), str) for k in ("shape", "reason"))
          and isinstance(tried, list) and all(isinstance(t, str) for t in tried)
          and (d.get("raised_by") is None or isinstance(d["raised_by"], dict)))
    return ComputeRoof(**{**d, "tried": tuple(tried)}) if ok else None


def _store(roofs: Roofs) -> None:
    write_cached("roofs", roofs.fingerprint, {**roofs.to_json(), "cached": True, "seconds": 0.0})
