"""Row assembly: a measurement of one configuration becomes the typed Row written to results.csv.

Every rate, factor and flag of a row is computed here, from the measurement and the configuration's
reference row (`kernels.spec.reference_of` is the one definition of the reference). hef comes from the
paired rounds when the configuration was measured alternating with its reference, else from the two
rows' rates.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from hwprof.kernels import Case
from hwprof.kernels.schemes import compute_precision, is_scheme
from hwprof.kernels.spec import MatmulSpec, Spec, reference_of, shape_str
from hwprof.measuring.devices import DeviceInfo, throttled
from hwprof.measuring.impl import Impl, blas_library
from hwprof.measuring.rounds import RoundsMeasurement
from hwprof.running import efficiency as eff
from hwprof.running.results import Row
from hwprof.running.roofs import Roofs


def base_row(spec: Spec, device: torch.device, status: str, reason: str = "") -> Row:
    """The columns every row has, whatever its status."""
    return Row(config_id=spec.config_id, kernel=spec.kernel, shape=shape_str(spec.shape), precision=spec.precision,
               sparsity=spec.sparsity_column, density=spec.density, backend=spec.backend, pass_=spec.pass_,
               device=str(device), status=status, reason=reason, logical_flops=spec.logical_flops)


def is_own_reference(spec: Spec) -> bool:
    return reference_of(spec).config_id == spec.config_id


def ok_row(spec: Spec, case: Case, m: RoundsMeasurement, device: torch.device, info: DeviceInfo,
           rel_error: float, reference: Row | None, before: dict, after: dict, roofs: Roofs | None = None,
           impl: Impl | None = None) -> Row:
    """A measured configuration's row; `reference` is its reference's row (None when not measured)."""
    t = m.summary.median
    energy = m.energy_per_call_j
    flags = list(case.flags) + list(m.flags) + implementation_flags(spec, device, impl)
    if m.load is not None:
        flags += m.load.flags(cpu_kernel=device.type == "cpu")
    if throttled(before, after):
        flags.append("throttled")
    if m.energy.source == "estimate" and energy is not None:
        flags.append("estimate")
    row = replace(
        base_row(spec, device, "ok"), density=case.density, backend=case.backend, logical_flops=case.logical_flops,
        physical_flops=case.physical_flops, time_s_median=t, time_s_ci_low=m.summary.ci_low,
        time_s_ci_high=m.summary.ci_high, time_rel_iqr=m.summary.rel_iqr, repeats=m.summary.n,
        energy_j=energy, power_w=m.power_w, energy_source=m.energy.source if energy is not None else "none",
        logical_flops_per_s=eff.rate(case.logical_flops, t), physical_flops_per_s=eff.rate(case.physical_flops, t),
        logical_flops_per_j=eff.rate(case.logical_flops, energy),
        rel_error=rel_error, flags=",".join(dict.fromkeys(flags)),
        pruning_error=case.extras.get("pruning_error"), bytes_moved=case.bytes_moved, weight_bytes=case.weight_bytes,
        arithmetic_intensity=eff.rate(case.logical_flops, case.bytes_moved),
        batch=m.batch, window_s=m.window_s,
        clock_mhz_start=before.get("clock_mhz"), clock_mhz_end=after.get("clock_mhz"),
        temp_c_start=before.get("temp_c"), temp_c_end=after.get("temp_c"),
        cpu_other_cores=m.load.other_cores if m.load else None,
        cpu_steal_frac=m.load.steal_frac if m.load else None,
        rounds=len(m.config.round_medians), rounds_remeasured=m.discarded_rounds,
        impl=impl.label() if impl is not None else "", cost_s=m.cost_s or None,
    )
    row = placed(row, info, roofs)
    row = with_hef(row, spec, reference)
    if m.hef_time is not None and row.hef_time is not None:        # paired rounds: the better estimate
        row.hef_time = m.hef_time
        row.hef_time_ci_low, row.hef_time_ci_high = m.hef_time_ci or (None, None)
        row.doublings_time = eff.doublings(row.hef_time)
    if m.paired_energy_ratio is not None and row.hef_energy is not None:
        row.hef_energy = m.paired_energy_ratio
        row.hef_energy_ci_low, row.hef_energy_ci_high = m.hef_energy_ci or (None, None)
        row.doublings_energy = eff.doublings(row.hef_energy)
    return row


def placed(row: Row, info: DeviceInfo, roofs: Roofs | None) -> Row:
    """The row against the device's peak (mfu) and this machine's measured roofs (roof_frac), in the
    precision whose arithmetic it runs (a scheme's); called again when a row of the run raised a roof."""
    precision = compute_precision(row.precision)
    peak = info.peaks.get(precision)
    row.peak_flops_per_s, row.peak_source = (peak.flops_per_s, peak.source) if peak else (None, "")
    # MFU from the work done: logical FLOP/s of a sparse or causal row can exceed the peak, which would read
    # as utilisation above 100%.
    row.mfu = eff.mfu(row.physical_flops_per_s, row.peak_flops_per_s)
    if roofs is not None and row.physical_flops == 0:   # an op that only moves data: its bandwidth
        row.roof_flops_per_s = None                     # (a hollow step moves none either: nothing to place)
        row.roof_frac = (eff.rate(eff.rate(row.bytes_moved, row.time_s_median), roofs.memory.bytes_per_s)
                         if row.bytes_moved else None)
    elif roofs is not None:     # the roof of the work done: physical FLOPs over the bytes of the operands
        row.roof_flops_per_s = eff.attainable(roofs.compute_roof(precision), roofs.memory.bytes_per_s,
                                              eff.rate(row.physical_flops, row.bytes_moved))
        row.roof_frac = eff.rate(row.physical_flops_per_s, row.roof_flops_per_s)
    return row


# Library kernels that compute in fp32 (a 16- or 8-bit case that runs only these was widened first).
_FP32_GEMMS = ("mkl:SGEMM", "mkl:SGEMM_BATCH", "mkl:SGEMV")


def implementation_flags(spec: Spec, device: torch.device, impl: Impl | None) -> list[str]:
    """What the traced call says about the row (measuring.impl): `reference-impl` when a library's reference
    or fallback kernel computed it, or when a dense CPU matmul called no BLAS at all (aten's own loop, as
    fp16 on CPUs without AVX512-FP16); `upcast-fp32` when a 16- or 8-bit matmul ran only fp32 GEMMs."""
    if impl is None:
        return []
    flags = ["reference-impl"] if impl.reference else []
    dense_matmul = isinstance(spec, MatmulSpec) and spec.sparsity.pattern == "dense" and not is_scheme(spec.precision)
    if device.type == "cpu" and dense_matmul and impl.logged and blas_library() == "mkl" and not impl.kernels:
        flags.append("reference-impl")
    names = {str(k) for k in impl.kernels}
    if dense_matmul and spec.precision in ("fp16", "bf16", "fp8_e4m3") and names and names <= set(_FP32_GEMMS):
        flags.append("upcast-fp32")
    return flags


def with_hef(row: Row, spec: Spec, reference: Row | None) -> Row:
    """Set hef and doublings against the reference row; a configuration that is its own reference gets 1
    (with the interval [1, 1]: it is 1 by definition, not by measurement)."""
    if reference is None and is_own_reference(spec):
        reference = row
        if row.status == "ok":
            row.hef_time_ci_low = row.hef_time_ci_high = 1.0
            if row.logical_flops_per_j is not None:
                row.hef_energy_ci_low = row.hef_energy_ci_high = 1.0
    if reference is None or reference.status != "ok":
        return row
    if row.logical_flops:
        row.hef_time = eff.hef(row.logical_flops_per_s, reference.logical_flops_per_s)
        row.hef_energy = eff.hef(row.logical_flops_per_j, reference.logical_flops_per_j)
    else:                       # an op between the matmuls does no logical compute: the same work, so time's ratio
        row.hef_time = eff.hef(eff.rate(1.0, row.time_s_median), eff.rate(1.0, reference.time_s_median))
        row.hef_energy = eff.hef(eff.rate(1.0, row.energy_j), eff.rate(1.0, reference.energy_j))
    row.doublings_time = eff.doublings(row.hef_time)
    row.doublings_energy = eff.doublings(row.hef_energy)
    return row


def failure_reason(e: BaseException) -> str:
    """One line a user can act on, for an exception raised while measuring a configuration."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text.lower():
        return f"out of memory: {text or type(e).__name__}"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
