"""`hwprof validate --model NAME|FILE`: hwprof's whole step of a model against the same model built by Hugging
Face transformers, prefill and decode, per precision.

hwprof's step is timed the way a run times it (one batch choice, then a window a round), transformers' with
torch.utils.benchmark (blocked_autorange), in rounds interleaved in one process, who goes first alternating;
the verdict is on the median of the per-round ratios. Tolerance: 10% for prefill; for decode too where
transformers' step takes at least DECODE_JUDGED_S, below which per-call Python overhead (which the two
implementations do not share) dominates and the ratio is reported, not judged. Where the two differ,
profiled calls of the two, alternating, say in which ops (aten op self time per step, largest differences first).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from hwprof.analysis.validate import ROUND_S, ROUNDS, _time_hwprof, _time_torch_benchmark, rounds_for
from hwprof.kernels import Unsupported, build_case
from hwprof.kernels.model import PHASES, PRESETS, ModelShape
from hwprof.kernels.step import StepSpec, activation_dtype
from hwprof.measuring.arm import prepare_arm
from hwprof.measuring.measure import Policy
from hwprof.measuring.meters import NoMeter
from hwprof.measuring.probe import Prober
from hwprof.measuring.timing import timer_for

TOLERANCE = 0.10
DECODE_JUDGED_S = 0.010


@dataclass
class ModelCheck:
    model: str
    phase: str
    precision: str
    hwprof_s: float | None           # per step
    transformers_s: float | None
    ratio: float | None              # median of per-round hwprof / transformers
    verdict: str                     # pass | fail | reported | skip
    note: str = ""
    rounds: int = 0
    ops_ratio: float | None = None   # hwprof's time in aten ops over transformers' (profiled): the same work?
    outside_s: tuple[float, float] | None = None   # (hwprof, transformers): a step's time outside aten ops


def resolve(name_or_file: str) -> tuple[ModelShape, object]:
    """(hwprof's shape, transformers' config) of a preset name or a config.json; ValueError otherwise."""
    from hwprof.kernels import hf
    if name_or_file in PRESETS:
        m = PRESETS[name_or_file]
        return m, hf.hf_config(m)
    config = hf.read_config(name_or_file)
    m = hf.shape_of(config, getattr(config, "model_type", "model"), 128)
    if m is None:
        raise ValueError(f"{name_or_file}: a {config.model_type!r} config has no hwprof twin to compare with "
                         f"(hwprof's decoder computes {', '.join(hf.LLAMA_LIKE)} and gpt2)")
    return m, config


OUTSIDE = "outside aten ops (Python: module calls, decorators, mask building)"
SIDES = ("hwprof", "transformers")


def op_times(fns: dict[str, Callable[[], object]], calls: int) -> dict[str, dict[str, float]]:
    """Per side, seconds per call of each aten op (self time) and OUTSIDE (the call's time no op accounts
    for), over `calls` warm calls of each, profiled in one session with the sides' calls alternating, so that
    both see the same phases of a noisy machine (profiled apart, a few calls each, two sides' figures could
    differ by tens of percent from the machine alone)."""
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    from hwprof.measuring.trace import redirect_fds
    for fn in fns.values():
        fn()
    with redirect_fds(), profile(activities=[ProfilerActivity.CPU]) as p:     # its messages go to fd 2
        for _ in range(calls):
            for side, fn in fns.items():
                with record_function(f"side:{side}"):
                    fn()
    out: dict[str, dict[str, float]] = {side: {} for side in fns}
    for e in p.events():
        if e.name.startswith("side:"):
            side = out[e.name[5:]]
            side[OUTSIDE] = side.get(OUTSIDE, 0.0) + e.self_cpu_time_total / calls * 1e-6
            continue
        top = e
        while top.cpu_parent is not None:
            top = top.cpu_parent
        if top.name.startswith("side:") and top is not e:
            side = out[top.name[5:]]
            side[e.name] = side.get(e.name, 0.0) + e.self_cpu_time_total / calls * 1e-6
    return out


def profiled_calls(call_s: float, budget_s: float = 2.0) -> int:
    """Pure: alternating profiled calls of each side within about `budget_s` (3 to 20)."""
    return max(3, min(20, int(budget_s / max(2 * call_s, 1e-9))))


def split(times: dict[str, float]) -> tuple[float, float]:
    """Pure: (time in aten ops, time outside them) of one side's op_times."""
    return sum(v for k, v in times.items() if k != OUTSIDE), times.get(OUTSIDE, 0.0)


def why(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Pure: the two steps' profiled time split into aten ops and the rest (`split` of each), in words: where
    the ops agree and the rest does not, the difference is the implementations' Python, not the model's work."""
    (in_a, out_a), (in_b, out_b) = a, b
    if not in_b:
        return ""
    return (f"in aten ops hwprof / transformers = {in_a / in_b:.3f}; outside them hwprof {out_a * 1e3:.2f} ms, "
            f"transformers {out_b * 1e3:.2f} ms a step ({(out_b - out_a) / (in_b + out_b):+.1%} of its profiled step)")


def differences(a: dict[str, float], b: dict[str, float], n: int = 3) -> str:
    """Pure: the largest per-step differences between two op_times, in words (hwprof minus transformers)."""
    diffs = sorted(((k, a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b)), key=lambda kv: -abs(kv[1]))
    parts = [f"{k} {'+' if d > 0 else '-'}{abs(d) * 1e3:.2f} ms" for k, d in diffs[:n] if abs(d) > 1e-6]
    return "hwprof against transformers, per step: " + ", ".join(parts) if parts else ""


def check(m: ModelShape, config, phase: str, precision: str, device: torch.device, seed: int = 0) -> ModelCheck:
    from hwprof.kernels import hf
    timer = timer_for(device)
    try:
        prober = Prober(timer, NoMeter(), device, trace=False)
        case, _ = build_case(StepSpec(m, precision, phase=phase), device, seed, call=prober)
    except Unsupported as e:
        return ModelCheck(m.name, phase, precision, None, None, None, "skip", str(e))
    model = hf.build_model(config, activation_dtype(precision), seed, device)
    if precision not in ("fp64", "fp32", "fp16", "bf16"):
        return ModelCheck(m.name, phase, precision, None, None, None, "skip",
                          f"{precision}: the comparison builds transformers' model in a plain dtype")
    with torch.no_grad():
        step = hf.hf_step(model, phase, m.batch, m.seq_len, m.kv_context, seed, device)
        call = prober.result.seconds
        rounds = rounds_for(call)
        ours, theirs = [], []
        with case.context():
            arm = prepare_arm(case.run, timer, Policy(round_s=ROUND_S), probe=prober.result)
            for k in range(rounds):                 # interleaved, who goes first alternating
                pair = [lambda: _time_hwprof(case.run, arm.batch, timer), lambda: _time_torch_benchmark(step, device)]
                got = [f() for f in (pair if k % 2 == 0 else pair[::-1])]
                mine, peer = got if k % 2 == 0 else got[::-1]
                ours.append(mine)
                theirs.append(peer)
            ops = op_times(dict(zip(SIDES, (case.run, step))), profiled_calls(call))
            (in_a, out_a), (in_b, out_b) = split(ops["hwprof"]), split(ops["transformers"])
            note = "; ".join(x for x in (why((in_a, out_a), (in_b, out_b)),
                                         differences(ops["hwprof"], ops["transformers"])) if x)
    ratio = statistics.median(h / p for h, p in zip(ours, theirs))
    hf_s = statistics.median(theirs)
    judged = phase == "prefill" or hf_s >= DECODE_JUDGED_S
    verdict = ("pass" if abs(ratio - 1) <= TOLERANCE else "fail") if judged else "reported"
    if not judged:
        note = (f"transformers' decode step takes {hf_s * 1e3:.2f} ms, under {DECODE_JUDGED_S * 1e3:.0f} ms: "
                "per-call Python overhead, which the two do not share, dominates; " + note)
    return ModelCheck(m.name, phase, precision, statistics.median(ours), hf_s, ratio, verdict, note, rounds,
                      in_a / in_b if in_b else None, (out_a, out_b))


def validate_model(name_or_file: str, device: torch.device, precisions=("fp32", "bf16"), phases=PHASES,
                   progress: Callable[[int, str], None] = lambda done, label: None) -> list[ModelCheck]:
    m, config = resolve(name_or_file)
    out = []
    for i, (precision, phase) in enumerate((p, ph) for p in precisions for ph in phases):
        progress(i, f"{m.name} {phase} {precision}")
        out.append(check(m, config, phase, precision, device))
    progress(len(out), "done")
    return out


__all__ = ["ModelCheck", "ROUNDS", "validate_model"]
