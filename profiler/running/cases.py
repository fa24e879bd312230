"""A block's cases: built and probed once (their arms warmed up and journaled), restored from the journal on
a resume (built again unprobed, their recorded rounds replayed), and rebuilt in fresh memory between passes.
running.blocks runs the passes over them."""
from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field, replace

import torch

from hwprof import kernels
from hwprof.errors import OutputError
from hwprof.kernels.build import estimate_bytes
from hwprof.kernels.case import all_finite
from hwprof.kernels.spec import Spec
from hwprof.kernels.step import StepSpec
from hwprof.measuring.arm import Window, prepare_arm
from hwprof.measuring.contention import LoadProbe, WindowLoad
from hwprof.measuring.devices import free_memory
from hwprof.measuring.impl import Impl
from hwprof.measuring.probe import Prober
from hwprof.measuring.rounds import Arm, Family
from hwprof.running.interrupts import check
from hwprof.running.journal import window_joules
from hwprof.running.results import Row
from hwprof.running.rows import base_row, failure_reason
from hwprof.running.session import Session


@dataclass
class Built:
    """A family's cases: arms ready to measure, and rows already decided (unsupported, failed)."""
    plan: object                # running.blocks.FamilyPlan
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


def build_family(plan, s: Session, probe: LoadProbe) -> Built:
    b = Built(plan)
    ref_id = plan.reference.config_id
    for spec in plan.configs:
        check(s.stop)                       # a signal: stop between two builds
        _build_one(spec, s, b)
    ref_row = s.done.get(ref_id)
    if ref_id not in b.arms and ref_id not in b.rows and ref_row is not None and ref_row.status == "ok":
        _build_one(plan.reference, s, b)     # measured in an earlier run (resume): built again to pair with
        b.rows.pop(ref_id, None)             # its row is not written again
    b.ref_arm = b.arms.get(ref_id)
    configs = [b.arms[c.config_id] for c in plan.configs if c.config_id in b.arms and c.config_id != ref_id]
    for arm in configs:
        if arm.warm_each_round:
            arm.cap_s = step_cap(arm, b.ref_arm, s.policy.rounds, s.policy.round_s)
    if configs or b.ref_arm is not None:
        quiet = s.baseline.quiet_s(ref_id) if s.baseline is not None else None
        b.family = Family(configs, b.ref_arm, s.timer, s.meter, s.policy, probe, quiet)
        _replay(b, s)
        b.family.on_round = lambda windows, load, busy, slow, fid=ref_id: s.journal.round(fid, windows, load, busy, slow)
    return b


def _replay(b: Built, s: Session) -> None:
    """The family's rounds measured before an interrupt (running.journal), applied again in order; a round
    naming a configuration the family no longer has (it failed to build again) is left out."""
    ref_id = b.plan.reference.config_id
    for which in ("before", "after"):      # a family the journal finished keeps the sensors it ended with
        values = s.replay.sensors.get((ref_id, which))
        if values is not None:
            setattr(b, which, values)
    by_key = {a.key: a for a in b.family.arms}
    for rec in s.replay.rounds.get(ref_id, []):
        if not all(w["id"] in by_key for w in rec["windows"]):
            continue
        windows = [Window(by_key[w["id"]], list(w["samples"]), w["calls"], w["wall"], window_joules(w["joules"]),
                          w.get("recorded", False), w.get("warm_s", 0.0)) for w in rec["windows"]]
        load = WindowLoad(**rec["load"]) if rec["load"] else None
        b.family.replay(windows, load, rec["busy"], rec["slow"])


def _build_one(spec: Spec, s: Session, b: Built) -> None:
    cid = spec.config_id
    b.specs[cid] = spec
    need, free = estimate_bytes(spec, s.device), free_memory(s.device)
    if need > free:
        b.rows[cid] = base_row(spec, s.device, "error", f"skipped: needs about {need / 2**30:.1f} GiB, "
                                                        f"{free / 2**30:.1f} GiB free on {s.device}")
        return
    try:
        rec = s.replay.cases.get(cid)
        if rec is not None:            # built and probed before an interrupt: again, unprobed, as its arm began
            _restore(spec, rec, s, b)
            return
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
        b.arms[cid] = arm = prepare_arm(case.run, s.timer, s.policy, case.context, probe=prober.result)
        arm.key, arm.warm_each_round = cid, warms_each_round(spec, arm, s)
        b.cases[cid] = case
        s.journal.case(cid, arm, b.rel_errors[cid], case.extras, prober.result.impl.to_json())
    except kernels.Unsupported as e:
        b.rows[cid] = base_row(spec, s.device, "unsupported", str(e))
    except OutputError:            # the disk, not the configuration: the run stops, resumable
        raise
    except Exception as e:         # one configuration's failure must not lose the others
        release(s.device)
        b.rows[cid] = base_row(spec, s.device, "error", failure_reason(e))


def _restore(spec: Spec, rec: dict, s: Session, b: Built) -> None:
    """A case from its journal record: built in fresh memory without the probing call, its error, extras and
    implementation as the first build found them, its arm as it stood before its first round."""
    cid = spec.config_id
    case, _ = kernels.build_case(spec, s.device, s.seed, probe=False)
    case.extras = dict(rec["extras"])
    b.impls[cid] = Impl.from_json(rec["impl"])
    record_impl(s.meta, cid, b.impls[cid])
    b.rel_errors[cid] = rec["rel_error"] if rec["rel_error"] is not None else math.nan
    arm = Arm(case.run, case.context, rec["batch"], call_s=rec["call_s"], cost_s=rec["cost_s"],
              cap_s=rec["cap_s"] if rec["cap_s"] is not None else math.inf, key=cid)
    if rec["first"] is not None:
        arm.first = Window(arm, [rec["first"][0]], 1, rec["first"][0], rec["first"][1])
    arm.warm_each_round = warms_each_round(spec, arm, s)
    b.arms[cid], b.cases[cid] = arm, case


# What a model step's rounds may cost at most: it is what models.csv (and a forecast) stands on, so it gets the
# suite's rounds, warm-ups and reference windows included, where a kernel's cap is twice its budget plus a call.
STEP_CAP_S = 60.0


def step_cap(arm: Arm, ref: Arm | None, rounds: int, round_s: float) -> float:
    """Pure: the cap of a step warmed each round: its `rounds` rounds (its window and warm-up, and the
    reference's beside it), within STEP_CAP_S, and never below the cap it had."""
    per_round = arm.window_cost(round_s) + (ref.window_cost(round_s) if ref is not None else 0.0)
    return max(arm.cap_s, min(STEP_CAP_S, arm.cost_s + rounds * per_round))


def warms_each_round(spec: Spec, arm: Arm, s: Session) -> bool:
    """A model step whose window holds one or two calls gets an unmeasured call before each window: in a run
    its rounds come after other families' kernels, and its first call after them found its heap and caches
    taken (gpt2-small on the Zen 3: 11-16% slower than back to back), which no server's steady state has."""
    return isinstance(spec, StepSpec) and arm.batch == 1 and 2 * arm.call_s >= s.policy.round_s


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


def rebuild(b: Built, s: Session) -> None:
    """The family's cases built again (same seed, same values, new buffers); the arms keep their batch."""
    for cid, arm in b.arms.items():
        if arm.error is not None or (arm.done and arm is not b.ref_arm):
            continue
        if isinstance(b.specs[cid], StepSpec):
            # A model step allocates its activations on every call, so each call already lands in memory of
            # its own; a rebuilt step's first call instead pays the allocator's first touch of its heap again
            # (gpt2-small prefill: 1.3-1.6x a warm call, one call a window), which no steady state has.
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


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
