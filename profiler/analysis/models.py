"""Model-level figures: a [[model]] step's rows combined by how often each kernel runs in the step.

Per (model, precision, sparsity, pass): logical FLOPs per token, seconds and joules per token, tokens per
second and per joule, and the model-level hef (the reference step's time over this step's, the reference
step being every kernel's dense fp32 reference realisation). One layer is measured and counted n_layers
times; the LM head once.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from hwprof.kernels.model import non_embedding_params, standard_flops_per_token
from hwprof.running.modelplan import ModelPlan

FLAGS_CARRIED = ("contended", "stalled", "noisy", "throttled", "estimate", "short-window", "few-repeats")


@dataclass
class ModelRow:
    model: str
    precision: str
    sparsity: str
    pass_: str
    status: str                        # ok | incomplete (a kernel of the step has no ok row)
    reason: str
    n_layers: int
    layers_measured: int               # always 1: the layer repeats, so it is measured once
    tokens_per_step: int
    params_non_embedding: int
    logical_flops_per_token: float | None
    standard_flops_per_token: int      # Kaplan's 2N (6N training) + attention + LM head, for comparison
    time_s_per_token: float | None
    energy_j_per_token: float | None
    tokens_per_s: float | None
    tokens_per_j: float | None
    logical_flops_per_j: float | None
    hef_time: float | None             # reference step time / this step's time
    hef_energy: float | None
    energy_source: str
    flags: str


COLUMNS = ["pass" if f.name == "pass_" else f.name for f in fields(ModelRow)]


def combine(df: pd.DataFrame, plan: ModelPlan) -> ModelRow:
    by_id = df.set_index("config_id")
    m = plan.model
    tokens = m.tokens
    base = dict(model=m.name, precision=plan.precision, sparsity=plan.sparsity, pass_=plan.pass_,
                n_layers=m.n_layers, layers_measured=1, tokens_per_step=tokens,
                params_non_embedding=non_embedding_params(m),
                standard_flops_per_token=standard_flops_per_token(m, plan.pass_))
    missing = []
    for part in plan.parts:
        for cid in (part.config_id, part.reference_id):
            if cid not in by_id.index or by_id.loc[cid, "status"] != "ok":
                status = by_id.loc[cid, "status"] if cid in by_id.index else "not measured"
                reason = by_id.loc[cid, "reason"] if cid in by_id.index else ""
                missing.append(f"{part.role} {cid}: {status}{(' (' + str(reason) + ')') if reason else ''}")
    if missing:
        return ModelRow(**base, status="incomplete", reason="; ".join(dict.fromkeys(missing)),
                        logical_flops_per_token=None, time_s_per_token=None, energy_j_per_token=None,
                        tokens_per_s=None, tokens_per_j=None, logical_flops_per_j=None, hef_time=None,
                        hef_energy=None, energy_source="none", flags="")

    def step(col: str, which: str) -> float | None:
        total = 0.0
        for part in plan.parts:
            v = by_id.loc[getattr(part, which), col]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return None
            total += part.count * float(v)
        return total
    flops = step("logical_flops", "config_id")
    t, t_ref = step("time_s_median", "config_id"), step("time_s_median", "reference_id")
    e, e_ref = step("energy_j", "config_id"), step("energy_j", "reference_id")
    rows = by_id.loc[[p.config_id for p in plan.parts]]
    flags = [f for cell in rows["flags"] for f in str(cell).split(",") if f in FLAGS_CARRIED]
    sources = sorted(set(rows["energy_source"]))
    return ModelRow(
        **base, status="ok", reason="", logical_flops_per_token=flops / tokens, time_s_per_token=t / tokens,
        energy_j_per_token=e / tokens if e is not None else None, tokens_per_s=tokens / t,
        tokens_per_j=tokens / e if e else None, logical_flops_per_j=flops / e if e else None,
        hef_time=t_ref / t, hef_energy=(e_ref / e) if e and e_ref else None,
        energy_source=sources[0] if len(sources) == 1 else "+".join(sources),
        flags=",".join(dict.fromkeys(flags)))


def model_rows(df: pd.DataFrame, plans: list[ModelPlan]) -> list[ModelRow]:
    return [combine(df, plan) for plan in plans]


def plans_of(meta: dict) -> list[ModelPlan]:
    return [ModelPlan.from_json(p) for p in (meta.get("suite") or {}).get("models", [])]


def model_table(df: pd.DataFrame, meta: dict) -> pd.DataFrame | None:
    """models.csv's rows for a run with [[model]] groups; None without them, and for a fleet run (whose rows
    are per device: a step combines one device's kernels, which this table does not yet split)."""
    plans = plans_of(meta)
    if not plans or meta.get("fleet"):
        return None
    records = []
    for r in model_rows(df, plans):
        d = asdict(r)
        d["pass"] = d.pop("pass_")
        records.append(d)
    return pd.DataFrame(records, columns=COLUMNS)


def write_models(run_dir: Path, df: pd.DataFrame, meta: dict) -> Path | None:
    """Write models.csv (missing figures as empty cells); None, nothing written, without model groups."""
    table = model_table(df, meta)
    if table is None:
        return None
    path = Path(run_dir) / "models.csv"
    table.to_csv(path, index=False)
    return path


def read_models(run_dir: Path) -> pd.DataFrame | None:
    path = Path(run_dir) / "models.csv"
    if not path.exists():
        return None
    return pd.read_csv(path, dtype={"reason": str, "flags": str, "sparsity": str}).fillna({"reason": "", "flags": ""})


def model_names(meta: dict) -> list[str]:
    return list(dict.fromkeys(p.model.name for p in plans_of(meta)))


def as_configurations(rows: list[ModelRow]) -> pd.DataFrame:
    """A model's steps in the shape of results.csv rows (what forecast_rows reads): one per precision
    setting, E0 its logical FLOP per joule, tokens per joule alongside."""
    out = []
    for r in rows:
        out.append({
            "config_id": f"model/{r.model}/{r.precision}/{r.sparsity}/{r.pass_}",
            "status": r.status,
            "logical_flops_per_j": r.logical_flops_per_j, "energy_source": r.energy_source,
            "doublings_energy": math.log2(r.hef_energy) if r.hef_energy else None,
            "logical_flops_per_s": (r.logical_flops_per_token / r.time_s_per_token
                                    if r.logical_flops_per_token and r.time_s_per_token else None),
            "tokens_per_j": r.tokens_per_j,
        })
    return pd.DataFrame(out)
