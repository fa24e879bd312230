"""Blocks of families, measured in interleaved passes.

A family is a reference and the configurations measured against it (`kernels.spec.reference_of`). The
sweep groups families into blocks, as many as fit in the policy's span of estimated sampling and in half
the free memory. In a block every case is built and warmed once; then the block runs in passes, each pass
giving every unfinished family one round (`measuring.rounds.Family`). A configuration's rounds are thus
spread over its whole block (the quick suite is one block of about 45 s), so its intervals cover the drift
of that time scale, which a run minutes later would otherwise see as a different number. Rows are written
when their block ends: an interrupted run loses at most one block.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from hwprof import kernels
from hwprof.kernels.build import estimate_bytes
from hwprof.kernels.case import all_finite
from hwprof.kernels.spec import Spec, reference_of
from hwprof.measuring.contention import LoadProbe
from hwprof.measuring.devices import Sensors, device_current, free_memory
from hwprof.measuring.impl import Impl
from hwprof.measuring.probe import Prober
from hwprof.measuring.measure import Policy
from hwprof.measuring.rounds import Arm, Family, prepare_arm
from hwprof.running.results import Row
from hwprof.running.rows import base_row, failure_reason, ok_row
from hwprof.running.session import Session

MEMORY_SHARE = 0.5          # a block's cases together may take this share of the free memory


@dataclass
class FamilyPlan:
    reference: Spec
    configs: list[Spec]         # to be measured, in suite order; the reference among them when it is one

    def estimate_s(self, policy: Policy) -> float:
        """Sampling seconds at the minimum number of rounds (each window paired with one of the reference)."""
        round_s = max(policy.round_s, policy.min_window_s / policy.rounds)
        return len(self.configs) * policy.rounds * round_s * 2

    def estimate_bytes(self) -> int:
        specs = self.configs + ([] if self.reference in self.configs else [self.reference])
        return sum(estimate_bytes(s) for s in specs)


def plan_families(pending: list[Spec]) -> list[FamilyPlan]:
    """Pure: the pending configurations grouped by reference, families in order of first appearance."""
    families: dict[str, FamilyPlan] = {}
    for spec in pending:
        ref = reference_of(spec)
        families.setdefault(ref.config_id, FamilyPlan(ref, [])).configs.append(spec)
    return list(families.values())


def plan_blocks(families: list[FamilyPlan], policy: Policy, free_bytes: int) -> list[list[FamilyPlan]]:
    """Pure: consecutive families grouped while a block's estimated sampling stays within the policy's
    span and its cases within MEMORY_SHARE of the free memory (a family too big for either goes alone)."""
    blocks: list[list[FamilyPlan]] = []
    seconds = nbytes = 0.0
    for f in families:
        s, b = f.estimate_s(policy), f.estimate_bytes()
        if blocks and seconds + s <= policy.span_s and nbytes + b <= MEMORY_SHARE * free_bytes:
            blocks[-1].append(f)
            seconds, nbytes = seconds + s, nbytes + b
        else:
            blocks.append([f])
            seconds, nbytes = s, b
    return blocks


@dataclass
class _Built:
    """A family's cases: arms ready to measure, and rows already decided (unsupported, failed)."""
    plan: FamilyPlan
    specs: dict[str, Spec] = field(default_factory=dict)
    arms: dict[str, Arm] = field(default_factory=dict)
    cases: dict[str, kernels.Case] = field(default_factory=dict)
    rel_errors: dict[str, float] = field(default_factory=dict)
    impls: dict[str, Impl] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    ref_arm: Arm | None = None
    family: Family | None = None
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)


def measure_block(block: list[FamilyPlan], s: Session, sensors: Sensors, probe: LoadProbe,
                  on_pass: Callable[[int, float], None] = lambda passes, completed: None) -> list[Row]:
    """Build, warm and measure a block's configurations in passes: their rows in suite order. One
    configuration's failure becomes its error row; the others go on. After each pass, on_pass hears the
    passes run and the block's configurations done (see `progress`)."""
    built: list[_Built] = []
    try:
        with device_current(s.device):
            for plan in block:
                built.append(_build_family(plan, s, probe))
            _passes(built, s, sensors, on_pass)
            rows = [row for b in built for row in _rows(b, s)]
            families = [b.family for b in built if b.family is not None]
            s.measured_s += sum(f.sampled_s for f in families)
            slow = s.meta.setdefault("contention", {}).get("slow_rounds", 0)
            s.meta["contention"]["slow_rounds"] = slow + sum(f.slow_discarded for f in families)
            return rows
    finally:
        built.clear()
        _release(s.device)


def _build_family(plan: FamilyPlan, s: Session, probe: LoadProbe) -> _Built:
    b = _Built(plan)
    ref_id = plan.reference.config_id
    for spec in plan.configs:
        _build_one(spec, s, b)
    ref_row = s.done.get(ref_id)
    if ref_id not in b.arms and ref_id not in b.rows and ref_row is not None and ref_row.status == "ok":
        _build_one(plan.reference, s, b)     # measured in an earlier run (resume): built again to pair with
        b.rows.pop(ref_id, None)             # its row is not written again
    b.ref_arm = b.arms.get(ref_id)
    configs = [b.arms[c.config_id] for c in plan.configs if c.config_id in b.arms and c.config_id != ref_id]
    if configs or b.ref_arm is not None:
        quiet = s.baseline.quiet_s(ref_id) if s.baseline is not None else None
        b.family = Family(configs, b.ref_arm, s.timer, s.meter, s.policy, probe, quiet)
    return b


def _build_one(spec: Spec, s: Session, b: _Built) -> None:
    cid = spec.config_id
    b.specs[cid] = spec
    need, free = estimate_bytes(spec), free_memory(s.device)
    if need > free:
        b.rows[cid] = base_row(spec, s.device, "error", f"skipped: needs about {need / 2**30:.1f} GiB, "
                                                        f"{free / 2**30:.1f} GiB free on {s.device}")
        return
    try:
        prober = Prober(s.timer, s.meter, s.device)
        case, out = kernels.build_case(spec, s.device, s.seed, call=prober)
        b.impls[cid] = prober.result.impl
        record_impl(s.meta, cid, prober.result.impl)
        if not all_finite(out):
            b.rows[cid] = replace(base_row(spec, s.device, "error", "output contains NaN/Inf; no rate is reported"),
                                  flags="nonfinite")
            return
        b.rel_errors[cid] = case.rel_error(out)
        out = None
        b.arms[cid] = prepare_arm(case.run, s.timer, s.policy, case.context, probe=prober.result)
        b.cases[cid] = case
    except kernels.Unsupported as e:
        b.rows[cid] = base_row(spec, s.device, "unsupported", str(e))
    except Exception as e:         # one configuration's failure must not lose the others
        _release(s.device)
        b.rows[cid] = base_row(spec, s.device, "error", failure_reason(e))


def record_impl(meta: dict, config_id: str, impl: Impl) -> None:
    """run.json's `implementations`: the libraries' banners (versions, ISA), each kernel with the
    configurations it ran, and the configurations a reference or fallback kernel computed."""
    rec = meta.setdefault("implementations", {"libraries": [], "kernels": {}, "reference": [], "unlogged": []})
    rec["libraries"] = list(dict.fromkeys(rec["libraries"] + list(impl.info)))
    for k in impl.kernels or [f"(no library) {op}" for op in impl.ops[:1]]:
        ids = rec["kernels"].setdefault(str(k), [])
        if config_id not in ids:
            ids.append(config_id)
    if impl.reference and config_id not in rec["reference"]:
        rec["reference"].append(config_id)
    if not impl.logged and config_id not in rec["unlogged"]:
        rec["unlogged"].append(config_id)


def _passes(built: list[_Built], s: Session, sensors: Sensors, on_pass: Callable[[int, float], None]) -> None:
    """Every unfinished family one round per pass, until all are done; sensors around each family's rounds.
    Between passes each unfinished family's inputs are built again in fresh memory, so that where its
    buffers happen to lie (cache sets, pages), which a run minutes later would draw differently, varies
    between rounds and shows in the interval instead of in the next run's number."""
    live = [b for b in built if b.family is not None]
    passes = 0
    while any(not b.family.done for b in live):
        for b in live:
            if b.family.done:
                continue
            if not b.before:
                b.before = sensors.snapshot()
            b.family.round()
            if b.family.done:
                b.after = sensors.snapshot()
        passes += 1
        on_pass(passes, progress(built, s.policy.rounds))
        for b in live:
            if not b.family.done:
                _rebuild(b, s)


def progress(built: list[_Built], rounds: int) -> float:
    """Configurations done, an unfinished one counting its kept rounds' share of the minimum (at most
    0.9: it may need more)."""
    total = 0.0
    for b in built:
        for spec in b.plan.configs:
            arm = b.arms.get(spec.config_id)
            if arm is None or arm.error is not None or (arm.done if arm is not b.ref_arm else b.family.done):
                total += 1.0
            else:
                total += min(len(arm.side.round_medians) / rounds, 0.9)
    return total


def _rebuild(b: _Built, s: Session) -> None:
    """The family's cases built again (same seed, same values, new buffers); the arms keep their batch."""
    for cid, arm in b.arms.items():
        if arm.error is not None or (arm.done and arm is not b.ref_arm):
            continue
        spec, extras = b.specs[cid], b.cases[cid].extras
        b.cases[cid] = arm.fn = arm.context = None        # free the old buffers before allocating the new
        try:
            # No probing call: the case ran before. Its first call in fresh memory took 0.99-1.04x a warm one
            # for kernels whose window holds a call or two, up to 1.5x for short ones whose window holds dozens
            # of batches, whose median one batch cannot move (README, Method); a probe is one more call per pass.
            case, _ = kernels.build_case(spec, s.device, s.seed, probe=False)
        except Exception as e:
            arm.error = e
            if arm is b.ref_arm:
                b.family.reference_error, b.family.reference = e, None
            continue
        case.extras = extras                              # computed once, by the first build
        b.cases[cid], arm.fn, arm.context = case, case.run, case.context


def _rows(b: _Built, s: Session) -> list[Row]:
    """The family's rows in suite order; the reference's first, since its configurations' hef needs it."""
    fam, ref_id = b.family, b.plan.reference.config_id
    if fam is not None:
        fam.finish([b.arms[c.config_id] for c in b.plan.configs if c.config_id in b.arms])
    out: dict[str, Row] = dict(b.rows)
    order = sorted(b.plan.configs, key=lambda c: c.config_id != ref_id)
    for spec in order:
        cid = spec.config_id
        if cid in out:
            continue
        arm = b.arms[cid]
        if arm.error is not None:
            out[cid] = base_row(spec, s.device, "error", failure_reason(arm.error))
            continue
        reference = out.get(ref_id) or s.done.get(ref_id)
        m = fam.measurement(arm)
        out[cid] = ok_row(spec, b.cases[cid], m, s.device, s.info, b.rel_errors[cid],
                          None if cid == ref_id else reference, b.before, b.after, s.roofs, b.impls.get(cid))
    return [out[c.config_id] for c in b.plan.configs]


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
