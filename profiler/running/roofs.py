"""Measured roofs of the run's device: the memory roof (STREAM, in `measuring.stream`) and, per precision,
the best matmul rate over a short sweep of large square shapes, as the Empirical Roofline Toolkit does.

Datasheet peaks are never reached by real kernels, and a CPU has none hwprof can trust; the measured roofs
are what this machine, this torch and this thread count sustain. They are measured once per machine
fingerprint and cached (`machine_cache`); a precision a later suite needs is measured then and added.
"""
from __future__ import annotations

import time
import math
from dataclasses import replace
from typing import Callable

import torch

from hwprof.kernels.build import build_case
from hwprof.kernels.caches import cold_bytes
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.spec import MatmulSpec
from hwprof.measuring.devices import DeviceInfo
from hwprof.measuring.arm import LONG_CALL_S
from hwprof.measuring.measure import run_window, warm_up
from hwprof.measuring.meters import NoMeter
from hwprof.measuring.probe import Prober
from hwprof.measuring.stream import measure_memory_roof
from hwprof.measuring.timing import Timer
from hwprof.running.machine_cache import fingerprint
from hwprof.running.roof_store import ComputeRoof, Roofs, _store, load_cached, machine_key
from hwprof.running.roof_store import METHOD_VERSION, parse_cached  # noqa: F401  (re-exported with the types)
from hwprof.version import __version__

CPU_SIZES = (256, 512, 1024, 2048, 4096)
CUDA_SIZES = (1024, 2048, 4096, 8192, 16384)
RISE = 1.03                 # a size must beat the best so far by 3% to count as rising
PATIENCE = 2                # sizes in a row without rising that end the sweep (one could be a disturbed trial)
WARMUP_S = 0.05             # each shape: calls for this long first (allocator, caches and clocks settle)
WINDOW_S = 0.15             # then batches for this long, the best batch's rate kept
MIN_BATCH_S = 0.01
# A row that beats its compute roof by more than its own interval raises it (the sweep missed this machine's
# best shape); rows within this share above it are the noise a roof measured in seconds has.
RAISE_TOLERANCE = 0.05


def _measure_shape(shape: tuple[int, ...], precision: str, device: torch.device, timer: Timer) -> tuple[float, float]:
    """(physical FLOP/s, seconds this cost) of one dense matmul shape. The first call is timed: a call of
    LONG_CALL_S or more is its own measurement (one-time costs are a few percent of it, and a second call
    would only double its cost); shorter ones are warmed up and the best batch of a window is kept."""
    t0 = time.perf_counter()
    prober = Prober(timer, NoMeter(), device, trace=False)
    case, _ = build_case(MatmulSpec(shape, precision), device, call=prober)
    first = prober.result.seconds
    if first >= LONG_CALL_S:
        fastest = first
    else:
        with case.context():
            last = warm_up(case.run, timer, WARMUP_S)
            batch = max(1, int(MIN_BATCH_S / last) if last > 0 else 1)
            per_call, _, _ = run_window(case.run, batch, timer, WINDOW_S)
        fastest = min((t for t in per_call if t > 0), default=first)      # the best batch
    rate = case.physical_flops / fastest if fastest > 0 else 0.0
    return rate, time.perf_counter() - t0


def sweep_shapes(n: int) -> list[tuple[int, int, int]]:
    """Tall, wide and deep shapes of the FLOPs of n^3 ([M, N, K]): kernels block M, N and K differently, and
    on some machines (AMX) a wide shape beats every square."""
    h = max(1, n // 2)
    return [(2 * n, h, n), (h, 2 * n, n), (h, h, 4 * n)]


def sweep_compute_roof(precision: str, device: torch.device, timer: Timer, budget_s: float,
                       sizes: tuple[int, ...] | None = None, extra: list[tuple[int, ...]] = (),
                       previous: ComputeRoof | None = None) -> ComputeRoof:
    """Best dense matmul rate of one precision: square sizes upwards until the rate stops rising by RISE,
    then `extra` (the suite's own shapes), then tall, wide and deep shapes at the best square, each left out
    when its predicted cost would take the sweep past its budget. Shapes `previous` tried are not measured
    again; its best stands unless beaten. The first shape is measured whatever it costs (a long first call is
    its own measurement), so a sweep costs at most twice its budget plus one call."""
    sizes = sizes or (CUDA_SIZES if device.type == "cuda" else CPU_SIZES)
    best = previous if previous is not None and previous.flops_per_s else None
    tried = list(previous.tried) if previous is not None else []
    spent, per_flop_s = 0.0, None         # seconds per FLOP of the last shape: predicts the next one's call

    def affordable(shape) -> bool:
        if per_flop_s is None:
            return True
        call = per_flop_s * 2 * math.prod(shape)
        return spent + (call if call >= LONG_CALL_S else 2 * call + WARMUP_S + WINDOW_S) <= budget_s

    def measure(shape) -> bool:
        nonlocal best, spent, per_flop_s
        key = _key(shape)
        if key in tried:
            return False
        tried.append(key)                 # measured now, or left out for the budget: not asked again
        if not affordable(shape):
            return False
        rate, cost = _measure_shape(tuple(shape), precision, device, timer)
        spent += cost
        per_flop_s = 1.0 / rate if rate > 0 else per_flop_s
        rising = best is None or rate >= best.flops_per_s * RISE
        if best is None or rate > best.flops_per_s:
            best = ComputeRoof(precision, rate, key)
        return rising

    try:
        flat = 0
        for n in sizes:
            if _key((n, n, n)) in tried:
                continue
            if not affordable((n, n, n)):
                break
            flat = 0 if measure((n, n, n)) else flat + 1
            if flat >= PATIENCE:
                break
        square = int(best.shape.split("x")[0]) if best is not None and best.shape.count("x") == 2 else sizes[0]
        for shape in [tuple(x) for x in extra] + sweep_shapes(square):     # the suite's own first
            measure(shape)
    except Unsupported as e:
        return ComputeRoof(precision, None, reason=str(e), tried=tuple(tried))
    except (torch.OutOfMemoryError, MemoryError):
        pass
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if best is None:
        return ComputeRoof(precision, None, reason="no shape fitted in memory", tried=tuple(tried))
    return replace(best, tried=tuple(tried))


def _key(shape) -> str:
    return "x".join(map(str, shape))


def _cached_and_missing(info: DeviceInfo, wanted: dict[str, list], remeasure: bool,
                        warn: Callable[[str], None] = lambda text: None) -> tuple[Roofs | None, list[str]]:
    """The cached roofs (None when remeasuring or none yet) and the precisions to sweep: those not cached,
    and those whose sweep has not tried one of the shapes `wanted` lists for it (the suite's own)."""
    if not isinstance(wanted, dict):             # a list of precisions: no shapes of their own
        wanted = {p: [] for p in wanted}
    roofs = None if remeasure else load_cached(info, warn)
    have = roofs.compute if roofs is not None else {}
    out = []
    for p, shapes in wanted.items():
        roof = have.get(p)
        if roof is None or (roof.flops_per_s and any(_key(x) not in roof.tried for x in shapes)):
            out.append(p)
    return roofs, out


def roofs_missing(info: DeviceInfo, wanted: dict[str, list], remeasure: bool = False,
                  warn: Callable[[str], None] = lambda text: None) -> bool:
    """Whether get_roofs would measure: nothing cached for this machine, or a precision or shape not yet in it
    (an invalid cached entry counts as missing; `warn` hears of it)."""
    roofs, missing = _cached_and_missing(info, wanted, remeasure, warn)
    return roofs is None or bool(missing)


def get_roofs(info: DeviceInfo, device: torch.device, timer: Timer, wanted: dict[str, list],
              remeasure: bool = False, budget_per_precision_s: float | None = None,
              notify: Callable[[str], None] = lambda text: None) -> Roofs:
    """The cached roofs, with what they lack measured now (all of it when `remeasure`). `wanted` maps each
    precision the run needs to the dense shapes of its own it runs in that precision."""
    key = machine_key(info)
    wanted = wanted if isinstance(wanted, dict) else {p: [] for p in wanted}
    roofs, missing = _cached_and_missing(info, wanted, remeasure, notify)
    t0 = time.perf_counter()
    if roofs is None:
        notify("measuring this machine's roofs (once; cached for later runs)")
        roofs = Roofs(fingerprint(key), key, time.strftime("%Y-%m-%d"), measure_memory_roof(device, cold_bytes(device), timer=timer))
    budget = budget_per_precision_s or (3.0 if device.type == "cuda" else 1.0)
    for p in missing:
        roofs.compute[p] = sweep_compute_roof(p, device, timer, budget, extra=wanted[p], previous=roofs.compute.get(p))
    if missing or not roofs.cached:
        roofs.machine["hwprof"] = __version__
        _store(roofs)
    roofs.seconds = time.perf_counter() - t0
    roofs.cached = roofs.cached and not missing
    return roofs


def raise_roofs(roofs: Roofs, rows: list, run: str) -> list[str]:
    """Raise a compute roof that a dense matmul row beat beyond its own interval (the slowest end of its
    time interval still faster than the roof by RAISE_TOLERANCE): the sweep missed this machine's best shape.
    The roof records the row, the run and the shape; the cache is updated. Returns what was raised, in words."""
    raised = []
    for r in rows:
        if r.status != "ok" or r.kernel != "matmul" or r.sparsity != "dense" or not r.physical_flops:
            continue
        roof, held_to = roofs.compute.get(r.precision), roofs.compute_roof(r.precision)
        if roof is None or not held_to or not r.time_s_median or not r.time_s_ci_high:
            continue
        # Against the roof the row is held to, which a wider precision's roof may set (`best_roof`).
        rate, slowest = r.physical_flops / r.time_s_median, r.physical_flops / r.time_s_ci_high
        if slowest > held_to * (1 + RAISE_TOLERANCE) and rate > held_to:
            roofs.compute[r.precision] = replace(roof, flops_per_s=rate, shape=r.shape, raised_by={
                "config_id": r.config_id, "run": run, "shape": r.shape, "from_flops_per_s": held_to,
                "date": time.strftime("%Y-%m-%d")})
            raised.append(f"{r.precision} {held_to / 1e9:.4g} -> {rate / 1e9:.4g} GFLOP/s by {r.config_id}")
    if raised:
        _store(roofs)
    return raised
