"""Blocks of families, measured in interleaved passes.

A family is a reference and the configurations measured against it (`kernels.spec.reference_of`). The
sweep groups families into blocks, as many as fit in the policy's span of estimated sampling and in half
the free memory. In a block every case is built and warmed once; then the block runs in passes, each pass
giving every unfinished family one round (`measuring.rounds.Family`). A configuration's rounds are thus
spread over its whole block (the quick suite is one block of about 45 s), so its intervals cover the drift
of that time scale, which a run minutes later would otherwise see as a different number. Rows are written
when their block ends; every round is journaled as it is measured (running.journal) and the journal fsynced
after every pass, so an interrupted run loses at most the pass in flight, and a resume replays the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hwprof.kernels.build import estimate_bytes
from hwprof.kernels.spec import Spec, measured_beside, reference_of
from hwprof.measuring.contention import LoadProbe
from hwprof.measuring.devices import Sensors, device_current
from hwprof.measuring.measure import Policy
from hwprof.running.cases import Built, build_family, rebuild, release
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
    span and its cases within MEMORY_SHARE of the free memory (a family too big for either goes alone).
    Families measured beside one another (a step's and its hollow twins': kernels.spec.measured_beside) are
    one unit that no block boundary splits, past the span if need be, where their cases fit in memory together."""
    budget = MEMORY_SHARE * free_bytes
    blocks: list[list[FamilyPlan]] = []
    seconds = nbytes = 0.0
    for unit, b in _units(families, budget):
        s = sum(f.estimate_s(policy) for f in unit)
        if blocks and seconds + s <= policy.span_s and nbytes + b <= budget:
            blocks[-1].extend(unit)
            seconds, nbytes = seconds + s, nbytes + b
        else:
            blocks.append(list(unit))
            seconds, nbytes = s, b
    return blocks


def _units(families: list[FamilyPlan], budget: float) -> list[tuple[list[FamilyPlan], int]]:
    """Pure: (unit, its estimated bytes) of consecutive families with the same measured_beside reference; a
    unit whose cases would not fit in `budget` together falls back to one unit a family."""
    units: list[list[FamilyPlan]] = []
    for f in families:
        if units and measured_beside(units[-1][0].reference) == measured_beside(f.reference):
            units[-1].append(f)
        else:
            units.append([f])
    out: list[tuple[list[FamilyPlan], int]] = []
    for unit in units:
        sizes = [f.estimate_bytes() for f in unit]
        if len(unit) == 1 or sum(sizes) <= budget:
            out.append((unit, sum(sizes)))
        else:
            out += [([f], b) for f, b in zip(unit, sizes)]
    return out


def measure_block(block: list[FamilyPlan], s: Session, sensors: Sensors, probe: LoadProbe,
                  on_pass: Callable[[int, float], None] = lambda passes, completed: None) -> list[Row]:
    """Build, warm and measure a block's configurations in passes: their rows in suite order. One
    configuration's failure becomes its error row; the others go on. After each pass, on_pass hears the
    passes run and the block's configurations done (see `progress`)."""
    built: list[Built] = []
    try:
        with device_current(s.device):
            for plan in block:
                built.append(build_family(plan, s, probe))
            _passes(built, s, sensors, on_pass)
            rows = [row for b in built for row in _rows(b, s)]
            families = [b.family for b in built if b.family is not None]
            s.measured_s += sum(f.sampled_s for f in families)
            slow = s.meta.setdefault("contention", {}).get("slow_rounds", 0)
            s.meta["contention"]["slow_rounds"] = slow + sum(f.slow_discarded for f in families)
            return rows
    finally:
        built.clear()
        release(s.device)


def _passes(built: list[Built], s: Session, sensors: Sensors, on_pass: Callable[[int, float], None]) -> None:
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
                s.journal.sensors(b.plan.reference.config_id, "before", b.before)
            b.family.round()
            if b.family.done:
                b.after = sensors.snapshot()
                s.journal.sensors(b.plan.reference.config_id, "after", b.after)
            if s.stop.is_set():           # a signal: stop at this round's end, everything kept so far on disk
                s.journal.sync()
                raise KeyboardInterrupt
        s.journal.sync()                  # a pass is on disk before the next starts
        passes += 1
        on_pass(passes, progress(built, s.policy.rounds))
        for b in live:
            if not b.family.done:
                rebuild(b, s)


def progress(built: list[Built], rounds: int) -> float:
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


def _rows(b: Built, s: Session) -> list[Row]:
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


