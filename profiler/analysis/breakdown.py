"""model_breakdown.csv: where a model step's token goes, kernel by kernel (analysis.models' parts, each as the
step runs it), and what no kernel explains; the report draws it (plots/tokens.png).
"""
from __future__ import annotations

import pandas as pd

from hwprof.analysis.models import combine, part_figures, plans_of
from hwprof.running.modelplan import ModelPlan

# model_breakdown.csv's columns, each with its description (the manual's reference is made from this)
BREAKDOWN_DOCS = {
    "model": "the [[model]] group's name",
    "phase": "prefill or decode",
    "precision": "the step's precision or scheme",
    "sparsity": "the pruning of its linear layers' weights",
    "pass": "fwd",
    "group": "what the part is: projections, attention, mlp, lm_head, norms, activation, rotary, residual, "
             "embedding, kv_cache, head_merge, glue (the Python between kernels: the hollow step), unexplained",
    "role": "the part's place in the step (q_proj, mlp_up, rmsnorm, kv_append, glue, ...)",
    "config_id": "the kernel measured alone for this part (empty for unexplained)",
    "count": "how often one step runs it (n_layers for a layer's kernel)",
    "time_s_per_token": "count x the kernel's time per call, per token, as the step runs it: its time alone "
                        "scaled by its kind's in-step factor (the ops, or the matmuls and attention, measured in "
                        "the step's sequence, ops_in_step or matmuls_in_step, less its baseline, over their sum "
                        "alone); unexplained: the measured step's time less the parts'",
    "alone_s_per_token": "count x the kernel's time per call measured alone, per token (the glue's is its own)",
    "share_of_step": "its share of the measured step's time",
}
BREAKDOWN_COLUMNS = list(BREAKDOWN_DOCS)


def breakdown(df: pd.DataFrame, plan: ModelPlan) -> list[dict]:
    """Where a token's time goes: each kernel's count x time per token and its share of the measured step,
    then what no kernel explains (`unexplained`); empty when a kernel or the step has no ok row."""
    row = combine(df, plan)
    by_id = df.set_index("config_id")
    if row.status != "ok" or row.predicted_time_s_per_token is None:
        return []
    key = dict(model=plan.model.name, phase=plan.phase, precision=plan.precision, sparsity=plan.sparsity,
               pass_=plan.pass_)
    out = []
    for p, x, alone in part_figures(by_id, plan, "time_s_median", "config_id"):
        per_token = x / plan.tokens
        out.append({**key, "group": p.group, "role": p.role, "config_id": p.config_id, "count": p.count,
                    "time_s_per_token": per_token, "alone_s_per_token": alone / plan.tokens,
                    "share_of_step": per_token / row.time_s_per_token})
    rest = row.time_s_per_token - row.predicted_time_s_per_token
    out.append({**key, "group": "unexplained", "role": "unexplained", "config_id": "", "count": 1,
                "time_s_per_token": rest, "alone_s_per_token": None, "share_of_step": rest / row.time_s_per_token})
    for d in out:
        d["pass"] = d.pop("pass_")
    return out


def breakdown_table(df: pd.DataFrame, meta: dict) -> pd.DataFrame | None:
    plans = plans_of(meta)
    if not plans or meta.get("fleet"):
        return None
    return pd.DataFrame([r for plan in plans for r in breakdown(df, plan)], columns=BREAKDOWN_COLUMNS)
