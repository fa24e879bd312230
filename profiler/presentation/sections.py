"""The report's tables beyond the configurations: models, fleet spread and outliers, claims. Each is a
(title, explanation, DataFrame) that report.py renders to Markdown and HTML alike."""
from __future__ import annotations

import pandas as pd

from hwprof.analysis import fleet
from hwprof.analysis.claims import check_claims
from hwprof.analysis.models import UNEXPLAINED_LIMIT, model_table, plans_of

MODEL_COLUMNS = ["model", "phase", "precision", "sparsity", "pass", "status", "layers_measured", "time_s_per_token",
                 "energy_j_per_token", "tokens_per_s", "tokens_per_j", "hef_time", "hef_energy",
                 "predicted_time_s_per_token", "predicted_alone_time_s_per_token", "predicted_hef_time", "unexplained_share", "energy_source", "flags",
                 "reason"]


def sections(df: pd.DataFrame, meta: dict, rounds: dict | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """The report's tables beyond the configurations: models (as in models.csv, `rounds` the run's kept
    rounds), fleet spread and claims."""
    out = []
    models = model_table(df, meta, rounds)
    if models is not None:
        n = "; ".join(f"{p.model.name}: {'+'.join(str(s.depth) for s in p.steps) or 'no'} of {p.model.n_layers} "
                      f"layers measured whole" for p in {p.model.name: p for p in plans_of(meta) if p.steps}.values())
        out.append(("Models", "Per-token cost of each model step (models.csv): the whole step measured (prefill: "
                    "the sequence at once; decode: one token against the KV cache), its hef against the same model "
                    "in dense fp32, the prediction its kernels make (their count-weighted sum, the ops at their time "
                    "in the step's sequence, with the step's own glue between them) and the share of the step no "
                    "kernel explains. A step measured "
                    f"shallower than the model is scaled to its depth by its kernels ({n})." + _unexplained(models),
                    models[[c for c in MODEL_COLUMNS if c in models.columns]]))
    if meta.get("fleet"):
        out += fleet_sections(df, meta)
    claims = pd.DataFrame([c.__dict__ for c in check_claims(df, meta, models)])
    out.append(("Claims", "Published efficiency claims checked on this run (hwprof claims); verdict thresholds "
                "are in hwprof/analysis/claims.py.", claims))
    return out


def _unexplained(models: pd.DataFrame) -> str:
    flags = models["flags"].fillna("").str.split(",")
    flagged = models[flags.apply(lambda f: "unexplained" in f)]
    if flagged.empty:
        return ""
    which = "; ".join(f"{r.model} {r.phase} {r.precision} {r.unexplained_share:+.0%}" + _interval(r)
                      for r in flagged.itertuples())
    noisy = flags[flagged.index].apply(lambda f: "noisy" in f).sum()
    return (f" Flagged unexplained, their kernels differ from the step by more than {UNEXPLAINED_LIMIT:.0%}: "
            f"{which}. Their measured step stands; their breakdown does not account for it. The ops, the glue and "
            "(where the step is dense and measured whole) the matmuls and attention are each timed in the step's "
            "sequence with the others stubbed, so the rest is what they cost together beyond their parts: the "
            "caches they evict for each other, threads waking between them; a pruned or shallower step's "
            "matmuls count at their time alone, which a step runs slower."
            + (f" {noisy} of them are also noisy (their interval is wider than the suite's target): their share is "
               "no surer than that interval." if noisy else ""))


def _interval(r) -> str:
    low, high = getattr(r, "unexplained_share_ci_low", None), getattr(r, "unexplained_share_ci_high", None)
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f" [{low:+.0%}, {high:+.0%} over its rounds]"


def fleet_sections(df: pd.DataFrame, meta: dict) -> list[tuple[str, str, pd.DataFrame]]:
    f = meta["fleet"]
    where = (f"{f['local_nodes']} logical nodes of one machine, taking turns: the spread below is this machine's own "
             "run-to-run noise floor, not a difference between devices" if f.get("local_nodes")
             else f"{len(f.get('tasks', []))} tasks, one per {f.get('per')}")
    spread = pd.DataFrame([s.__dict__ for s in fleet.spread(df, meta)])
    slow = pd.DataFrame([o.__dict__ for o in fleet.outliers(df, meta)])
    text = (f"Devices slower than their siblings' median by more than {fleet.OUTLIER_EXCESS:.0%} (time or energy); "
            "beyond_ci: the device's interval lies wholly above that median.")
    return [("Fleet", f"Spread across devices of the same model ({where}).", spread),
            ("Fleet outliers", text if not slow.empty else text + " None found.", slow)]


