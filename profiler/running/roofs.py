"""Measured roofs of the run's device: the memory roof (STREAM, in `measuring.stream`) and, per precision,
the best matmul rate over a short sweep of large square shapes, as the Empirical Roofline Toolkit does.

Datasheet peaks are never reached by real kernels, and a CPU has none hwprof can trust; the measured roofs
are what this machine, this torch and this thread count sustain. They are measured once per machine
fingerprint and cached (`machine_cache`); a precision a later suite needs is measured then and added.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from hwprof.kernels.build import build_case
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.spec import MatmulSpec
from hwprof.measuring.devices import DeviceInfo
from hwprof.measuring.measure import run_window, warm_up
from hwprof.measuring.stream import MemoryRoof, measure_memory_roof
from hwprof.measuring.timing import Timer
from hwprof.running import machine_cache
from hwprof.running.machine_cache import fingerprint, read_cached, write_cached
from hwprof.version import __version__

METHOD_VERSION = 2          # bump when the method changes: cached roofs of another method are not reused
CPU_SIZES = (256, 512, 1024, 2048, 4096)
CUDA_SIZES = (1024, 2048, 4096, 8192, 16384)
RISE = 1.03                 # a size must beat the best so far by 3% to count as rising
PATIENCE = 2                # sizes in a row without rising that end the sweep (one could be a disturbed trial)
WARMUP_S = 0.1              # each size: calls for this long first (allocator, caches and clocks settle)
WINDOW_S = 0.2              # then batches for this long, the best batch's rate kept
MIN_BATCH_S = 0.01


@dataclass(frozen=True)
class ComputeRoof:
    precision: str
    flops_per_s: float | None      # None: no kernel for this precision here (reason says why)
    shape: str = ""                # the shape that reached it
    reason: str = ""


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
        roof = self.compute.get(precision)
        return roof.flops_per_s if roof else None

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "machine": self.machine, "measured": self.measured,
                "method_version": METHOD_VERSION, "memory": self.memory.to_json(),
                "compute": {p: asdict(r) for p, r in self.compute.items()},
                "seconds": self.seconds, "cached": self.cached}

    @classmethod
    def from_json(cls, d: dict) -> "Roofs":
        return cls(d["fingerprint"], d["machine"], d["measured"], MemoryRoof(**d["memory"]),
                   {p: ComputeRoof(**r) for p, r in d["compute"].items()}, d.get("seconds", 0.0),
                   d.get("cached", False))


def machine_key(info: DeviceInfo) -> dict:
    """What a roof depends on: the machine (`machine_cache.machine_key`) and this method's version."""
    return machine_cache.machine_key(info) | {"method_version": METHOD_VERSION}


def load_cached(info: DeviceInfo) -> Roofs | None:
    """This machine's cached roofs, or None (none yet, or a file that does not parse)."""
    data = read_cached("roofs", fingerprint(machine_key(info)))
    try:
        roofs = Roofs.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None
    roofs.cached, roofs.seconds = True, 0.0
    return roofs


def _store(roofs: Roofs) -> None:
    write_cached("roofs", roofs.fingerprint, {**roofs.to_json(), "cached": True, "seconds": 0.0})


def sweep_compute_roof(precision: str, device: torch.device, timer: Timer, budget_s: float,
                       sizes: tuple[int, ...] | None = None) -> ComputeRoof:
    """Best dense matmul rate of one precision: square sizes upwards until the rate stops rising by RISE,
    the next size would not fit the budget, or memory runs out."""
    sizes = sizes or (CUDA_SIZES if device.type == "cuda" else CPU_SIZES)
    best: ComputeRoof | None = None
    flat = 0
    t_start = time.perf_counter()
    last_call = 0.0
    for n in sizes:
        if best is not None and time.perf_counter() - t_start + max(8 * last_call * 3, WARMUP_S + WINDOW_S) > budget_s:
            break                                   # the next size: ~8x a call, a few times, or the windows
        try:
            case, _ = build_case(MatmulSpec((n, n, n), precision), device)
        except Unsupported as e:
            return ComputeRoof(precision, None, reason=str(e))
        except (torch.OutOfMemoryError, MemoryError):
            break
        with case.context():
            last_call = warm_up(case.run, timer, WARMUP_S)
            batch = max(1, int(MIN_BATCH_S / last_call) if last_call > 0 else 1)
            per_call, _, _ = run_window(case.run, batch, timer, WINDOW_S)
        fastest = min((t for t in per_call if t > 0), default=None)      # the best batch
        rate = case.physical_flops / fastest if fastest else 0.0
        del case
        rising = best is None or rate >= best.flops_per_s * RISE
        if best is None or rate > best.flops_per_s:
            best = ComputeRoof(precision, rate, f"{n}x{n}x{n}")
        flat = 0 if rising else flat + 1
        if flat >= PATIENCE:
            break
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return best or ComputeRoof(precision, None, reason="no size fitted in memory")


def _cached_and_missing(info: DeviceInfo, precisions: list[str], remeasure: bool) -> tuple[Roofs | None, list[str]]:
    """The cached roofs (None when remeasuring or none yet) and the precisions they lack, each once."""
    roofs = None if remeasure else load_cached(info)
    have = roofs.compute if roofs is not None else {}
    return roofs, [p for p in dict.fromkeys(precisions) if p not in have]


def roofs_missing(info: DeviceInfo, precisions: list[str], remeasure: bool = False) -> bool:
    """Whether get_roofs would measure: nothing cached for this machine, or a precision not yet in it."""
    roofs, missing = _cached_and_missing(info, precisions, remeasure)
    return roofs is None or bool(missing)


def get_roofs(info: DeviceInfo, device: torch.device, timer: Timer, precisions: list[str],
              remeasure: bool = False, budget_per_precision_s: float | None = None,
              notify: Callable[[str], None] = lambda text: None) -> Roofs:
    """The cached roofs, with any precision they lack measured now (all of them when `remeasure`)."""
    key = machine_key(info)
    roofs, missing = _cached_and_missing(info, precisions, remeasure)
    t0 = time.perf_counter()
    if roofs is None:
        notify("measuring this machine's roofs (once; cached for later runs)")
        roofs = Roofs(fingerprint(key), key, time.strftime("%Y-%m-%d"), measure_memory_roof(device, timer=timer))
    budget = budget_per_precision_s or (3.0 if device.type == "cuda" else 1.0)
    for p in missing:
        roofs.compute[p] = sweep_compute_roof(p, device, timer, budget)
    if missing or not roofs.cached:
        roofs.machine["hwprof"] = __version__
        _store(roofs)
    roofs.seconds = time.perf_counter() - t0
    roofs.cached = roofs.cached and not missing
    return roofs
