"""`hwprof forecast`: feed a run's measured efficiency into the forecast model; write CSV, JSON and a plot."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from hwprof.analysis import forecast as fc
from hwprof.analysis.models import as_configurations, model_names, model_rows, plans_of
from hwprof.compat import tomllib
from hwprof.errors import BadInput
from hwprof.running.rundir import atomic_write_together, read_run_json
from hwprof.running.results import read_results

SCENARIO_KEYS = ("power_watts", "years", "doublings_per_year", "kappa", "law", "target_ratio",
                 "train_params", "train_tokens")

FIELDS = {
    "config_id": "configuration measured (results.csv)",
    "e0_flops_per_j": "E0: the configuration's measured logical FLOP per joule (logical_flops_per_j)",
    "energy_source": "how E0's joules were obtained (an estimate is labelled)",
    "compute_per_year_start": "logical FLOPs the power budget buys in the first year at E0",
    "compute_per_year_end": "logical FLOPs per year at the horizon, efficiency having doubled beta*years times",
    "cumulative_compute_years": "C(t)/(E0*P0*1 year) at the horizon: 1 + (2^(beta t) - 1)/(beta ln2)",
    "cumulative_flops": "cumulative logical FLOPs at the horizon, the starting year's stock included",
    "excess_loss_ratio": "X(t) = C(t)^(-kappa) at the horizon",
    "loss_start": "compute-optimal loss with one year of compute at E0 (with law = chinchilla)",
    "loss_end": "compute-optimal loss at the horizon (with law = chinchilla)",
    "years_to_target": "years until X reaches target_ratio (null: never, with the reason in years_to_target_note)",
    "years_to_target_note": "why years_to_target is null, when it is",
    "doublings": "log2(hef_energy): the configuration's worth in efficiency doublings over the fp32 reference",
    "years_of_progress": "doublings / doublings_per_year: years of efficiency progress the setting is worth",
    "train_flops": "6*N*D logical FLOPs of the training-cost view",
    "train_time_s": "kernel-level lower bound on training time at the measured logical FLOP/s",
    "train_energy_j": "kernel-level lower bound on training energy at the measured logical FLOP/J",
    "tokens_per_j": "with a model: tokens per joule of its measured step at this precision setting",
    "tokens_per_year_start": "with a model: tokens the power budget processes in the first year",
}


@dataclass
class Scenario:
    power_watts: float = 1000.0
    years: float = 10.0
    doublings_per_year: float = 1.0
    kappa: float | None = None
    law: str | None = "chinchilla"
    target_ratio: float = 0.5
    train_params: float | None = None
    train_tokens: float | None = None

    def validate(self) -> "Scenario":
        def bad(msg):
            raise BadInput(f"forecast scenario: {msg}")
        for name in ("power_watts", "years", "doublings_per_year", "target_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(f"{name} must be a finite number (got {v!r})")
        if self.power_watts <= 0:
            bad(f"power_watts must be positive (got {self.power_watts})")
        if self.years <= 0:
            bad(f"years must be positive (got {self.years})")
        if not 0 < self.target_ratio <= 1:
            bad(f"target_ratio {self.target_ratio} is outside (0, 1]")
        if self.kappa is not None and (isinstance(self.kappa, bool) or not isinstance(self.kappa, (int, float))
                                       or not self.kappa > 0 or not math.isfinite(self.kappa)):
            bad(f"kappa must be positive (got {self.kappa})")
        if self.law not in (None, "chinchilla"):
            bad(f"law {self.law!r}: only 'chinchilla' is built in")
        for name in ("train_params", "train_tokens"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v)):
                bad(f"{name} must be positive (got {v!r})")
        if (self.train_params is None) != (self.train_tokens is None):
            bad("give both train_params and train_tokens for the training-cost view")
        return self

    @property
    def effective_kappa(self) -> float:
        if self.kappa is not None:
            return float(self.kappa)
        return fc.ChinchillaLaw().kappa


def load_scenario(path: Path | None = None, overrides: dict | None = None) -> Scenario:
    """A scenario from an optional TOML file, with overrides (keys of SCENARIO_KEYS; None = not given)."""
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(f"scenario {path}: cannot read ({e})") from None
        except (tomllib.TOMLDecodeError, RecursionError) as e:
            raise BadInput(f"scenario {path}: not valid TOML ({e or 'nested too deeply'})") from None
        unknown = set(data) - set(SCENARIO_KEYS)
        if unknown:
            raise BadInput(f"scenario {path}: unknown key(s) {', '.join(sorted(unknown))} "
                           f"(allowed: {', '.join(SCENARIO_KEYS)})")
    for key, v in (overrides or {}).items():
        if key not in SCENARIO_KEYS:
            raise BadInput(f"forecast scenario: unknown setting {key!r}")
        if v is not None:
            data[key] = v
    if "kappa" in data and "law" not in data:
        data["law"] = None          # an explicit kappa without a law: excess-loss ratio only
    return Scenario(**data).validate()


def forecast_rows(df: pd.DataFrame, s: Scenario) -> list[dict]:
    kappa = s.effective_kappa
    law = fc.ChinchillaLaw() if s.law == "chinchilla" else None
    cum = fc.cumulative_compute(s.years, s.doublings_per_year)
    x = cum ** (-kappa)
    years_target = fc.years_to_ratio(s.target_ratio, kappa, s.doublings_per_year)
    out = []
    for r in df[df["status"] == "ok"].to_dict("records"):
        e0 = r.get("logical_flops_per_j")
        if e0 is None or (isinstance(e0, float) and math.isnan(e0)) or e0 <= 0:
            continue                    # no energy measured, or an op between matmuls (no logical compute)
        year = e0 * s.power_watts * fc.SECONDS_PER_YEAR
        doublings = r.get("doublings_energy")
        doublings = None if doublings is None or (isinstance(doublings, float) and math.isnan(doublings)) else doublings
        row = {
            "config_id": r["config_id"], "e0_flops_per_j": e0, "energy_source": r["energy_source"],
            "compute_per_year_start": year, "compute_per_year_end": year * 2 ** (s.doublings_per_year * s.years),
            "cumulative_compute_years": cum, "cumulative_flops": year * cum, "excess_loss_ratio": x,
            "loss_start": law.optimal_loss(year) if law else None,
            # L(t) = E + (L0 - E) * X(t) with the scenario's kappa (for Chinchilla's own kappa this equals its
            # compute-optimal loss at year*cum exactly; a user's kappa is then used for losses and X alike)
            "loss_end": fc.loss_at(s.years, law.optimal_loss(year), law.E, kappa, s.doublings_per_year) if law else None,
            "years_to_target": years_target if math.isfinite(years_target) else None,
            "years_to_target_note": "" if math.isfinite(years_target) else
            "never: with this doublings_per_year cumulative compute stays bounded below what the target needs",
            "doublings": doublings,
            "years_of_progress": (doublings / s.doublings_per_year) if doublings is not None and s.doublings_per_year else None,
        }
        if s.train_params:
            c, t, j = fc.training_cost(s.train_params, s.train_tokens, r.get("logical_flops_per_s"), e0)
            row.update(train_flops=c, train_time_s=t, train_energy_j=j)
        if r.get("tokens_per_j") is not None:
            row.update(tokens_per_j=r["tokens_per_j"],
                       tokens_per_year_start=r["tokens_per_j"] * s.power_watts * fc.SECONDS_PER_YEAR)
        out.append(row)
    return out


def trajectories(rows: list[dict], s: Scenario, max_series: int = 6) -> list[dict]:
    """Curves for the plot, for the most efficient configurations. X(t) in units of a configuration's own
    first year is the same curve for every configuration, so what is drawn is what differs between them:
    the compute-optimal loss (with a law), else X measured against the reference's first year of compute
    (hef_energy x C(t))^-kappa."""
    kappa = s.effective_kappa
    law = fc.ChinchillaLaw() if s.law == "chinchilla" else None
    steps = [s.years * i / 50 for i in range(51)]
    chosen = sorted(rows, key=lambda r: -r["e0_flops_per_j"])[:max_series]
    out = []
    for r in chosen:
        cum = [fc.cumulative_compute(t, s.doublings_per_year) for t in steps]
        series = {"label": r["config_id"], "years": steps,
                  "cumulative_logical_flops": [r["compute_per_year_start"] * c for c in cum]}
        if law:
            series["loss"] = [fc.loss_at(t, r["loss_start"], law.E, kappa, s.doublings_per_year) for t in steps]
        else:
            hef = 2.0 ** r["doublings"] if r.get("doublings") is not None else 1.0
            series["excess_loss_ratio_vs_reference"] = [(hef * c) ** (-kappa) for c in cum]
        out.append(series)
    return out


def write_forecast(run_dir: Path, s: Scenario, model: str | None = None, phase: str = "decode") -> list[Path]:
    """forecast.csv and forecast.json in the run directory (the plot is the report's business). With a
    model, E0 is that model's measured whole step of `phase` (decode by default: where inference spends its
    tokens), per precision setting, not a kernel's nor the kernels' sum."""
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    df = read_results(run_dir / "results.csv")
    if model is not None:
        names = model_names(meta)
        if model not in names:
            raise BadInput(f"{run_dir}: no model {model!r} in this run "
                           f"({'models: ' + ', '.join(names) if names else 'it has no [[model]] groups'})")
        plans = [p for p in plans_of(meta) if p.model.name == model]
        phases = list(dict.fromkeys(p.phase for p in plans))
        if phase not in phases:
            raise BadInput(f"{run_dir}: model {model!r} has no {phase} step in this run (phases: {', '.join(phases)})")
        df = as_configurations(model_rows(df, [p for p in plans if p.phase == phase]))
    try:
        rows = forecast_rows(df, s)
    except OverflowError:
        rows = None
    if rows is None:
        raise BadInput(f"{run_dir}: this scenario's forecast overflows a float (fewer years or doublings per year); "
                       "nothing was written")
    if not rows:
        what = f"no precision setting of model {model!r} has" if model else "no ok configuration has"
        raise BadInput(f"{run_dir}: {what} a measured logical_flops_per_j "
                       "(run with an energy meter, or with the estimate meter, and every kernel of the step ok)")
    csv_path, json_path = run_dir / "forecast.csv", run_dir / "forecast.json"
    doc = {
        "tool": "hwprof", "run": str(run_dir), "energy_source": meta.get("energy", {}).get("source"),
        "model": model, "phase": phase if model is not None else None,
        "scenario": {**asdict(s), "kappa": s.effective_kappa},
        "note": (f"E0 from the measured {phase} step of model {model}" if model is not None else
                 "kernel-level figures: real training adds overheads (communication, data, idle) the kernel does not see"),
        "fields": FIELDS, "configurations": rows, "trajectories": trajectories(rows, s),
    }
    # Both built before either is written. allow_nan=False: a value beyond a float's range (a scenario of too
    # many doublings) fails here, not as `Infinity` in a file that is then not JSON.
    try:
        text = json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n"
    except ValueError:
        raise BadInput(f"{run_dir}: this scenario's forecast overflows a float (fewer years or doublings per year); "
                       "nothing was written") from None
    atomic_write_together({csv_path: pd.DataFrame(rows).to_csv(index=False), json_path: text})
    return [csv_path, json_path]


def _json_default(v):
    return str(v)
