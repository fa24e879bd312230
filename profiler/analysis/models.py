"""Model-level figures: a [[model]] step's measured time and energy per token, the prediction its kernels make
(their count-weighted sum), and the share of the step no kernel explains (analysis of running.modelplan).

Per (model, phase, precision, sparsity, pass): the measured whole step (a full-depth step's row, or a step k
layers deep scaled by its kernels, t(n) = t(k) P(n) / P(k), where P(d) is the kernel-sum prediction of a step
d layers deep: a layer's share is the difference of two noisy steps no more, and the LM head, five layers'
worth of gpt2-small's prefill, is not spread over the layers; the reference's likewise), per token, with its hef against the reference step (the same model, dense fp32); the kernel-sum
prediction and its hef; `unexplained_share` = 1 - predicted / measured (per-operator overhead: the Python and
dispatch work between kernels, which no kernel measured alone carries). A training (fwd+bwd) plan has the
kernel sum only. analysis.breakdown splits a token's time by component group (model_breakdown.csv).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from hwprof.analysis.in_step import in_step, round_shares
from hwprof.kernels.model import non_embedding_params, standard_flops_per_token
from hwprof.measuring.stats import median_ci
from hwprof.running.modelplan import ModelPlan, Part
from hwprof.running.results import UNEXPLAINED_LIMIT

# a kernel's flags that say something of the whole step it belongs to (not nonfinite or upcast-fp32: its own)
FLAGS_CARRIED = ("contended", "stalled", "noisy", "throttled", "estimate", "short-window", "few-repeats",
                 "few-rounds", "reference-impl", "bimodal", "slow-machine", "off-history")


@dataclass
class ModelRow:
    model: str                                  # the [[model]] group's name
    phase: str                                  # prefill (the sequence at once), decode (one token against the KV cache), train (fwd+bwd: kernel sum only)
    precision: str                              # the step's precision or quantization scheme
    sparsity: str                               # the pruning of its linear layers' weights (dense, unstructured:D, block:B:D)
    pass_: str                                  # fwd, or fwd+bwd for a training plan
    status: str                                 # ok | incomplete (a step or kernel of it, or its reference, has no ok row: reason says which)
    reason: str                                 # why a figure is missing, in words
    n_layers: int                               # the model's layers
    layers_measured: str                        # depth of the measured step: n_layers, or fewer for a model scaled to its depth by its kernels
    tokens_per_step: int                        # tokens one step processes: batch x seq_len (prefill), batch (decode)
    context: int                                # decode: the KV cache's earlier tokens; 0 for prefill
    params_non_embedding: int                   # N of the scaling laws: the layers' weight matrices
    logical_flops_per_token: float | None       # the step's logical FLOPs (matmuls and attention, dense reference) per token
    standard_flops_per_token: int               # Kaplan et al.'s 2N + 2 n_layers n_ctx d_attn + LM head (6N... in training), for comparison
    time_s_per_token: float | None              # measured: the whole step's time per token (a shallower step's scaled to n_layers by its kernels)
    time_s_per_token_ci_low: float | None       # the measured step's time interval, per token (full-depth steps)
    time_s_per_token_ci_high: float | None      # upper end of that interval
    energy_j_per_token: float | None            # measured: the step's joules per token (total device energy)
    tokens_per_s: float | None                  # 1 / time_s_per_token
    tokens_per_j: float | None                  # 1 / energy_j_per_token
    logical_flops_per_j: float | None           # logical FLOPs per joule of the measured step (E0 of `forecast --model`)
    hef_time: float | None                      # measured: the reference step's time over this step's (paired rounds for a full-depth step)
    hef_time_ci_low: float | None               # its interval, where the step was measured at full depth
    hef_time_ci_high: float | None              # upper end of that interval
    hef_energy: float | None                    # the reference step's joules over this step's
    predicted_time_s_per_token: float | None    # the kernel sum: each kernel's time x how often the step runs it (ops, matmuls and attention at their time in the step's sequence), plus the glue, per token
    predicted_alone_time_s_per_token: float | None  # the same sum with every kernel at its time measured alone, call after call (what a sum of operator profiles predicts)
    predicted_hef_time: float | None            # the reference step's kernel sum over this step's
    unexplained_share: float | None             # 1 - predicted / measured time: the step's work its kernels do not explain
    unexplained_share_ci_low: float | None      # its interval over the step's rounds, each round's step against its hollow twins' rounds of the same pass (covering the share itself); empty without both in-step twins or with too few rounds
    unexplained_share_ci_high: float | None     # upper end of that interval
    energy_source: str                          # the meter(s) the step's joules came from
    flags: str                                  # the step's (and for a training plan its kernels') caveats: estimate, noisy, few-rounds, ...


COLUMNS = ["pass" if f.name == "pass_" else f.name for f in fields(ModelRow)]


def scale_depth(t_k: float, head: float, layer: float, glue_n: float, k: int, n: int) -> float:
    """Pure: a step of n layers from one k layers deep, by the kernels' prediction of each depth: P(d) =
    head + d x layer + glue (the whole model's glue, measured, taken as d/n of it)."""
    predicted = lambda d: head + d * layer + glue_n * d / n          # noqa: E731
    if predicted(k) <= 0:                     # nothing to scale by (no kernel figure): in proportion to the layers
        return t_k * n / k
    return t_k * predicted(n) / predicted(k)


def _value(by_id: pd.DataFrame, cid: str, col: str) -> float | None:
    if cid not in by_id.index:
        return None
    v = by_id.loc[cid, col]
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _missing(by_id: pd.DataFrame, pairs: list[tuple[str, str]]) -> list[str]:
    out = []
    for what, cid in pairs:
        if cid not in by_id.index or by_id.loc[cid, "status"] != "ok":
            status = by_id.loc[cid, "status"] if cid in by_id.index else "not measured"
            reason = by_id.loc[cid, "reason"] if cid in by_id.index else ""
            out.append(f"{what} {cid}: {status}{(' (' + str(reason) + ')') if reason else ''}")
    return out


def part_figures(by_id: pd.DataFrame, plan: ModelPlan, col: str, which: str) -> list[tuple[Part, float, float]] | None:
    """in_step of the plan's parts' `col` (count-weighted) for the step (`which` = config_id) or its
    reference (reference_id); None where one has no figure."""
    out = []
    for p in plan.parts:
        v = _value(by_id, getattr(p, which), col)
        if v is None:
            return None
        out.append((p, p.count * v))
    return in_step(out)


def _measured(by_id: pd.DataFrame, plan: ModelPlan, col: str, which: str) -> float | None:
    """The step's `col` (time_s_median, energy_j, logical_flops) at n_layers, for the step or its reference:
    the full-depth step's, or the shallow step's scaled by the kernels' figures for `col` (scale_depth)."""
    step = plan.steps[0]
    v = _value(by_id, getattr(step, which), col)
    n = plan.model.n_layers
    if v is None or step.depth == n:
        return v
    parts = part_figures(by_id, plan, col, which)
    if parts is None:
        return None
    head = layer = glue = 0.0
    for p, x, _ in parts:
        if p.role == "glue":
            glue += x
        elif p.count % n == 0:
            layer += x / n
        else:
            head += x
    return scale_depth(v, head, layer, glue, step.depth, n)


def _kernel_sum(by_id: pd.DataFrame, plan: ModelPlan, col: str, which: str) -> float | None:
    parts = part_figures(by_id, plan, col, which)
    return None if parts is None else sum(x for _, x, _ in parts)


def combine(df: pd.DataFrame, plan: ModelPlan, rounds: dict[str, list[dict]] | None = None) -> ModelRow:
    by_id = df.set_index("config_id")
    m, tokens = plan.model, plan.tokens
    trained = plan.phase == "train"
    base = dict(model=m.name, phase=plan.phase, precision=plan.precision, sparsity=plan.sparsity, pass_=plan.pass_,
                n_layers=m.n_layers, layers_measured="+".join(str(s.depth) for s in plan.steps),
                tokens_per_step=tokens, context=m.kv_context if plan.phase == "decode" else 0,
                params_non_embedding=non_embedding_params(m),
                standard_flops_per_token=standard_flops_per_token(
                    m, plan.pass_, m.kv_context + 1 if plan.phase == "decode" else m.seq_len))
    empty = dict.fromkeys(f.name for f in fields(ModelRow) if f.name not in base and f.name not in ("status", "reason"))
    missing = _missing(by_id, [(f"step {s.depth} layers", s.config_id) for s in plan.steps] +
                       [(f"reference step {s.depth} layers", s.reference_id) for s in plan.steps])
    kernels_missing = _missing(by_id, [(p.role, p.config_id) for p in plan.parts] +
                               [(f"reference {p.role}", p.reference_id) for p in plan.parts])
    if missing or (trained and kernels_missing):
        return ModelRow(**base, **{**empty, "energy_source": "none", "flags": ""}, status="incomplete",
                        reason="; ".join(dict.fromkeys(missing + kernels_missing)))
    pred = pred_ref = pred_alone = None
    if not kernels_missing:                       # the parts once: their figures in the step and alone
        parts = part_figures(by_id, plan, "time_s_median", "config_id")
        pred, pred_alone = (None, None) if parts is None else (sum(x for _, x, _ in parts), sum(a for *_, a in parts))
        pred_ref = _kernel_sum(by_id, plan, "time_s_median", "reference_id")
    if trained:                                   # not measured whole: the kernel sum stands in
        t, t_ref = pred, pred_ref
        e, e_ref = (_kernel_sum(by_id, plan, "energy_j", w) for w in ("config_id", "reference_id"))
        flops = _kernel_sum(by_id, plan, "logical_flops", "config_id")
        rows = by_id.loc[[p.config_id for p in plan.parts]]
    else:
        t, t_ref = _measured(by_id, plan, "time_s_median", "config_id"), _measured(by_id, plan, "time_s_median", "reference_id")
        e, e_ref = _measured(by_id, plan, "energy_j", "config_id"), _measured(by_id, plan, "energy_j", "reference_id")
        flops = _measured(by_id, plan, "logical_flops", "config_id")
        rows = by_id.loc[[s.config_id for s in plan.steps]]
    full = bool(plan.steps) and plan.steps[0].depth == m.n_layers
    one = plan.steps[0].config_id if full else ""

    def at_full(col: str) -> float | None:          # the full-depth step row's own figure (None otherwise)
        return _value(by_id, one, col) if full else None

    def per_token(v):
        return v / tokens if v is not None else None
    flags = [f for cell in rows["flags"] for f in str(cell).split(",") if f in FLAGS_CARRIED]
    sources = sorted(set(rows["energy_source"]))
    hef = at_full("hef_time") or (t_ref / t if t else None)
    reason = ("not measured whole (training): the measured columns are the kernel sum" if trained else
              ("; ".join(kernels_missing) and "no kernel sum: " + "; ".join(dict.fromkeys(kernels_missing))))
    if plan.steps and not full and not trained:
        reason = "; ".join(x for x in (f"measured {plan.steps[0].depth} of {m.n_layers} layers deep, scaled to "
                                       f"{m.n_layers} by the step's kernels", reason) if x)
    unexplained = 1.0 - pred / t if pred is not None and t and not trained else None
    if unexplained is not None and abs(unexplained) > UNEXPLAINED_LIMIT:
        flags.append("unexplained")
    ci = median_ci(round_shares(rounds or {}, plan)) if unexplained is not None else None
    ci = (min(ci[0], unexplained), max(ci[1], unexplained)) if ci else (None, None)
    return ModelRow(
        **base, status="ok", reason=reason,
        logical_flops_per_token=flops / tokens if flops is not None else None,
        time_s_per_token=t / tokens, time_s_per_token_ci_low=per_token(at_full("time_s_ci_low")),
        time_s_per_token_ci_high=per_token(at_full("time_s_ci_high")),
        energy_j_per_token=e / tokens if e is not None else None, tokens_per_s=tokens / t,
        tokens_per_j=tokens / e if e else None, logical_flops_per_j=flops / e if e and flops else None,
        hef_time=hef, hef_time_ci_low=at_full("hef_time_ci_low"), hef_time_ci_high=at_full("hef_time_ci_high"),
        hef_energy=at_full("hef_energy") or (e_ref / e if e and e_ref else None),
        predicted_time_s_per_token=pred / tokens if pred is not None else None,
        predicted_alone_time_s_per_token=pred_alone / tokens if pred_alone is not None and not trained else None,
        predicted_hef_time=pred_ref / pred if pred and pred_ref else None,
        unexplained_share=unexplained, unexplained_share_ci_low=ci[0], unexplained_share_ci_high=ci[1],
        energy_source=sources[0] if len(sources) == 1 else "+".join(sources),
        flags=",".join(dict.fromkeys(flags)))


def model_rows(df: pd.DataFrame, plans: list[ModelPlan], rounds: dict[str, list[dict]] | None = None) -> list[ModelRow]:
    return [combine(df, plan, rounds) for plan in plans]


def plans_of(meta: dict) -> list[ModelPlan]:
    return [ModelPlan.from_json(p) for p in (meta.get("suite") or {}).get("models", [])]


def model_table(df: pd.DataFrame, meta: dict, rounds: dict[str, list[dict]] | None = None) -> pd.DataFrame | None:
    """models.csv's rows for a run with [[model]] groups; None without them, and for a fleet run (whose rows
    are per device: a step combines one device's kernels, which this table does not yet split). `rounds`
    (running.journal.kept_rounds of the run) gives the unexplained share its interval."""
    plans = plans_of(meta)
    if not plans or meta.get("fleet"):
        return None
    records = []
    for r in model_rows(df, plans, rounds):
        d = asdict(r)
        d["pass"] = d.pop("pass_")
        records.append(d)
    return pd.DataFrame(records, columns=COLUMNS)


def write_models(run_dir: Path, df: pd.DataFrame, meta: dict) -> Path | None:
    """Write models.csv and model_breakdown.csv (missing figures as empty cells, atomically); None, nothing
    written, without model groups."""
    from hwprof.running.journal import kept_rounds
    from hwprof.running.rundir import atomic_write_text
    table = model_table(df, meta, kept_rounds(run_dir))
    if table is None:
        return None
    path = Path(run_dir) / "models.csv"
    atomic_write_text(path, table.to_csv(index=False))
    from hwprof.analysis.breakdown import breakdown_table
    atomic_write_text(Path(run_dir) / "model_breakdown.csv", breakdown_table(df, meta).to_csv(index=False))
    return path


def read_models(run_dir: Path) -> pd.DataFrame | None:
    path = Path(run_dir) / "models.csv"
    if not path.exists():
        return None
    return pd.read_csv(path, dtype={"reason": str, "flags": str, "sparsity": str, "layers_measured": str}).fillna(
        {"reason": "", "flags": ""})


def model_names(meta: dict) -> list[str]:
    return list(dict.fromkeys(p.model.name for p in plans_of(meta)))


def as_configurations(rows: list[ModelRow]) -> pd.DataFrame:
    """A model's steps in the shape of results.csv rows (what forecast_rows reads): one per (phase, precision
    setting), E0 its measured logical FLOP per joule, tokens per joule alongside."""
    out = []
    for r in rows:
        out.append({
            "config_id": f"model/{r.model}/{r.phase}/{r.precision}/{r.sparsity}/{r.pass_}", "phase": r.phase,
            "status": r.status,
            "logical_flops_per_j": r.logical_flops_per_j, "energy_source": r.energy_source,
            "doublings_energy": math.log2(r.hef_energy) if r.hef_energy else None,
            "logical_flops_per_s": (r.logical_flops_per_token / r.time_s_per_token
                                    if r.logical_flops_per_token and r.time_s_per_token else None),
            "tokens_per_j": r.tokens_per_j,
        })
    return pd.DataFrame(out)
