"""A step's kernels as the step runs them (analysis.models' prediction): the ops', and the matmuls' and
attention's, figures alone scaled to what their hollow twins measure in the step's sequence, and the share of
the step that leaves unexplained, round by round, where the step's rounds alternate with its twins'.
"""
from __future__ import annotations

import statistics

from hwprof.running.modelplan import BASELINE, IN_STEP, MATMULS_IN_STEP, OPS_IN_STEP, ModelPlan, Part


def in_step(parts: list[tuple[Part, float]]) -> list[tuple[Part, float, float]]:
    """Pure: (part, figure in the step, figure alone) of each part of the kernel sum, from each part's
    count-weighted figure. Measured alone, call after call, a kernel runs with its code and operands hot; in
    the step it follows kernels of other kinds and shapes and takes longer (a small op several times, a bf16
    linear layer 1.3-1.7x). Where the plan has OPS_IN_STEP (the step with only its matmuls and attention
    stubbed: its ops and glue in the step's order), the ops' figures are scaled by (OPS_IN_STEP - its
    baseline) / their sum alone, so that together they are what the ops cost in the step; MATMULS_IN_STEP
    (only the ops stubbed) scales the matmuls and attention likewise. The baseline is the hollow step whose
    stubs write as the in-step one's do (a run planned before baselines: the glue). Each kernel keeps its
    share of its kind; the in-step parts themselves are not terms of the sum."""
    measured = {p.role: x for p, x in parts if p.role in (*IN_STEP, "glue")}

    def factor(role: str, alone: float) -> float:
        # none where the column has no in-step figure (a hollow step's FLOPs are 0): the figure alone stands
        inside = _inside(measured, role)
        return inside / alone if inside > 0 and alone > 0 else 1.0
    kernels = [(p, x) for p, x in parts if p.role not in (*IN_STEP, "glue")]
    ops = factor(OPS_IN_STEP, sum(x for p, x in kernels if p.is_op))
    matmuls = factor(MATMULS_IN_STEP, sum(x for p, x in kernels if not p.is_op))
    return [(p, x * (ops if p.is_op else matmuls if p.role != "glue" else 1.0), x)
            for p, x in parts if p.role not in IN_STEP]


def _inside(measured: dict[str, float], role: str) -> float:
    """Pure: what an in-step hollow step says its live kind costs in the step: its figure less its baseline's
    (the glue's, for a run planned before baselines)."""
    return measured.get(role, 0.0) - measured.get(BASELINE[role], measured.get("glue", 0.0))


def round_shares(rounds: dict[str, list[dict]], plan: ModelPlan) -> list[float]:
    """Pure: the unexplained share of each round of a step measured whole with both in-step twins, paired:
    the step's k-th kept round against the k-th of each twin, measured in the same pass (the twins share its
    block and their rounds alternate with its own), 1 - (glue + ops in step - its baseline + matmuls in step -
    its baseline) / step, each the median per-call time of its windows in that round. That is the prediction
    in_step makes (each kind's kernels scaled to its in-step total), so the rounds' shares scatter around the
    row's. Empty otherwise (the kernels alone would enter, measured in passes of their own)."""
    step = plan.steps[0] if plan.steps else None
    roles = {p.role: p for p in plan.parts}
    need = ("glue", OPS_IN_STEP, BASELINE[OPS_IN_STEP], MATMULS_IN_STEP, BASELINE[MATMULS_IN_STEP])
    if step is None or step.depth != plan.model.n_layers or any(r not in roles for r in need):
        return []
    steps = _round_medians(rounds, step.reference_id, step.config_id)
    twins = [_round_medians(rounds, roles[r].reference_id, roles[r].config_id) for r in need]
    shares = []
    for s, *figures in zip(steps, *twins):
        measured = dict(zip(need, figures))
        shares.append(1.0 - (measured["glue"] + _inside(measured, OPS_IN_STEP) + _inside(measured, MATMULS_IN_STEP)) / s)
    return shares


def _round_medians(rounds: dict[str, list[dict]], family: str, cid: str) -> list[float]:
    """Pure: per kept round of `family` (its reference's config_id), the median per-call time of `cid`'s windows."""
    out = []
    for r in rounds.get(family, []):
        samples = [x for w in r["windows"] if w["id"] == cid for x in w["samples"]]
        if samples:
            out.append(statistics.median(samples))
    return out
