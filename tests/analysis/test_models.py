"""Model-level figures from component rows: exact arithmetic, incomplete steps, models.csv, forecast."""
import json
import math

import pandas as pd
import pytest

from hwprof.analysis.models import COLUMNS, as_configurations, combine, model_rows, read_models, write_models
from hwprof.kernels.spec import AttentionSpec, MatmulSpec
from hwprof.running.modelplan import expand_model_group


def _rows(plan, time_of, energy_of=None, status_of=None):
    """results.csv-like rows for a plan's kernels and references."""
    recs = {}
    for part in plan.parts:
        for cid in (part.config_id, part.reference_id):
            kind, shape = cid.split("/")[:2]
            dims = tuple(int(x) for x in shape.split("x"))
            flops = (MatmulSpec(dims, "fp32") if kind == "matmul" else AttentionSpec(dims, "fp32", "causal")).logical_flops
            recs[cid] = dict(config_id=cid, status=(status_of or {}).get(cid, "ok"), reason="", logical_flops=flops,
                             time_s_median=time_of(cid), energy_j=energy_of(cid) if energy_of else None,
                             flags="estimate,contended" if "x4096x" in cid else "", energy_source="rapl")
    return pd.DataFrame(list(recs.values()))


def test_per_token_figures_are_count_weighted_sums_over_the_step():
    _, (plan,) = expand_model_group({"preset": "tiny", "precisions": ["bf16"]})
    time = lambda cid: 2e-3 if "/fp32/" in cid else 1e-3          # noqa: E731  the bf16 step runs twice as fast
    joules = lambda cid: 0.3 if "/fp32/" in cid else 0.1           # noqa: E731
    df = _rows(plan, time, joules)
    r = combine(df, plan)
    runs = sum(p.count for p in plan.parts)                          # 4 layers x 6 kernels + the head = 25
    assert runs == 25 and r.status == "ok" and r.layers_measured == 1 and r.n_layers == 4
    assert r.time_s_per_token == pytest.approx(runs * 1e-3 / 64)
    assert r.energy_j_per_token == pytest.approx(runs * 0.1 / 64)
    assert r.tokens_per_s == pytest.approx(64 / (runs * 1e-3)) and r.tokens_per_j == pytest.approx(64 / (runs * 0.1))
    assert r.hef_time == pytest.approx(2.0) and r.hef_energy == pytest.approx(3.0)
    flops = sum(p.count * df.set_index("config_id").loc[p.config_id, "logical_flops"] for p in plan.parts)
    assert r.logical_flops_per_token == flops / 64 and r.logical_flops_per_j == pytest.approx(flops / (runs * 0.1))
    assert r.flags == "estimate,contended"                           # a kernel's caveats carry to the model


def test_a_step_with_a_missing_or_failed_kernel_is_incomplete_and_says_which():
    _, (plan,) = expand_model_group({"preset": "tiny", "precisions": ["bf16"]})
    head = next(p for p in plan.parts if p.role == "lm_head")
    df = _rows(plan, lambda cid: 1e-3, status_of={head.config_id: "error"})
    r = combine(df, plan)
    assert r.status == "incomplete" and "lm_head" in r.reason and r.hef_time is None and r.tokens_per_s is None
    r = combine(df[df.config_id != head.config_id], plan)
    assert "not measured" in r.reason


def test_without_energy_the_time_figures_stand_and_energy_ones_are_empty():
    _, (plan,) = expand_model_group({"preset": "tiny"})
    r = combine(_rows(plan, lambda cid: 1e-3), plan)
    assert r.tokens_per_s > 0 and r.energy_j_per_token is None and r.tokens_per_j is None and r.hef_energy is None
    assert r.hef_time == pytest.approx(1.0)


def test_models_csv_is_written_for_runs_with_models_only(tmp_path):
    _, plans = expand_model_group({"preset": "tiny", "precisions": ["fp32", "bf16"]})
    df = pd.concat([_rows(p, lambda cid: 1e-3, lambda cid: 0.1) for p in plans]).drop_duplicates("config_id")
    meta = {"suite": {"models": [p.to_json() for p in plans]}}
    path = write_models(tmp_path, df, meta)
    back = read_models(tmp_path)
    assert list(back.columns) == COLUMNS and len(back) == 2 and path.name == "models.csv"
    assert write_models(tmp_path / "x", df, {"suite": {}}) is None and read_models(tmp_path / "x") is None
    conf = as_configurations(model_rows(df, plans))
    assert conf["config_id"].tolist() == ["model/tiny/fp32/dense/fwd", "model/tiny/bf16/dense/fwd"]
    assert conf["doublings_energy"].tolist() == [0.0, 0.0] and (conf["tokens_per_j"] == 64 / 2.5).all()


def test_forecast_from_a_model_uses_its_flop_per_joule(tmp_path):
    from hwprof.analysis.forecast_table import Scenario, write_forecast
    from hwprof.errors import BadInput
    from hwprof.running.results import ResultsWriter, Row
    _, plans = expand_model_group({"preset": "tiny", "precisions": ["bf16"]})
    df = _rows(plans[0], lambda cid: 1e-3, lambda cid: 0.1)
    w = ResultsWriter(tmp_path / "results.csv")
    for r in df.to_dict("records"):
        kind = r["config_id"].split("/")[0]
        w.append(Row(r["config_id"], kind, "1x1x1", "fp32", "dense", 1.0, "default", "fwd", "cpu", "ok",
                     logical_flops=r["logical_flops"], time_s_median=1e-3, energy_j=0.1, energy_source="rapl",
                     logical_flops_per_j=r["logical_flops"] / 0.1))
    w.close()
    (tmp_path / "run.json").write_text(json.dumps({"tool": "hwprof", "schema_version": 1, "suite": {"models": [p.to_json() for p in plans]},
                                                   "energy": {"source": "rapl"}}))
    write_forecast(tmp_path, Scenario(), model="tiny")
    doc = json.loads((tmp_path / "forecast.json").read_text())
    (row,) = doc["configurations"]
    step = model_rows(df, plans)[0]
    assert doc["model"] == "tiny" and row["config_id"] == "model/tiny/bf16/dense/fwd"
    assert row["e0_flops_per_j"] == pytest.approx(step.logical_flops_per_j)
    assert row["tokens_per_j"] == pytest.approx(step.tokens_per_j)
    assert row["tokens_per_year_start"] == pytest.approx(step.tokens_per_j * 1000 * 365.25 * 86400)
    with pytest.raises(BadInput, match="no model 'gpt2' in this run"):
        write_forecast(tmp_path, Scenario(), model="gpt2")


def test_an_incomplete_step_says_which_kernels_and_why_exactly():
    _, (plan,) = expand_model_group({"preset": "tiny", "precisions": ["bf16"]})
    head = next(p for p in plan.parts if p.role == "lm_head")
    df = _rows(plan, lambda cid: 1e-3, status_of={head.config_id: "unsupported"})
    df.loc[df.config_id == head.config_id, "reason"] = "no kernel"
    r = combine(df, plan)
    assert r.reason == f"lm_head {head.config_id}: unsupported (no kernel)"
    assert (r.energy_source, r.flags, r.logical_flops_per_token) == ("none", "", None)
    df.loc[df.config_id == head.config_id, "reason"] = ""
    assert combine(df, plan).reason == f"lm_head {head.config_id}: unsupported"
    gone = combine(df[df.config_id != head.config_id], plan)
    assert gone.reason == f"lm_head {head.config_id}: not measured"
    qkv = next(p for p in plan.parts if p.role == "qkv")
    two = combine(df[~df.config_id.isin([head.config_id, qkv.config_id])], plan)
    assert two.reason == f"qkv {qkv.config_id}: not measured; lm_head {head.config_id}: not measured"


@pytest.mark.parametrize("flag", ["contended", "stalled", "noisy", "throttled", "estimate", "short-window",
                                  "few-repeats"])
def test_each_caveat_of_a_kernel_carries_to_the_model_and_others_do_not(flag):
    _, (plan,) = expand_model_group({"preset": "tiny", "precisions": ["bf16"]})
    df = _rows(plan, lambda cid: 1e-3)
    df["flags"] = f"upcast-fp32,{flag}"
    assert combine(df, plan).flags == flag


def test_the_standard_estimate_is_an_exact_integer():
    _, (plan,) = expand_model_group({"preset": "tiny"})
    r = combine(_rows(plan, lambda cid: 1e-3), plan)
    from hwprof.kernels.model import standard_flops_per_token
    assert r.standard_flops_per_token == standard_flops_per_token(plan.model) and isinstance(r.standard_flops_per_token, int)
    assert r.energy_source == "rapl"


def test_energy_figures_need_both_steps_joules_and_mixed_sources_are_named():
    _, (plan,) = expand_model_group({"preset": "tiny", "precisions": ["bf16"]})
    df = _rows(plan, lambda cid: 1e-3, lambda cid: None if "/fp32/" in cid else 0.1)
    r = combine(df, plan)
    assert r.status == "ok" and r.reason == "" and r.energy_j_per_token > 0 and r.hef_energy is None
    df = _rows(plan, lambda cid: 1e-3, lambda cid: 0.1)
    df.loc[df.config_id == plan.parts[0].config_id, "energy_source"] = "estimate"
    assert combine(df, plan).energy_source == "estimate+rapl"


def test_models_csv_round_trips_with_empty_cells_for_missing_figures(tmp_path):
    _, plans = expand_model_group({"preset": "tiny", "precisions": ["fp32", "bf16"]})
    df = pd.concat([_rows(p, lambda cid: 1e-3) for p in plans]).drop_duplicates("config_id")
    bf16_head = next(p for p in plans[1].parts if p.role == "lm_head").config_id
    df = df[df.config_id != bf16_head]
    write_models(tmp_path, df, {"suite": {"models": [p.to_json() for p in plans]}})
    text = (tmp_path / "models.csv").read_text()
    assert ",,," in text and "None" not in text and "nan" not in text
    back = read_models(tmp_path)
    assert back["reason"].tolist()[0] == "" and "not measured" in back["reason"].tolist()[1]
    assert back["flags"].tolist() == ["estimate,contended", ""] and back["sparsity"].tolist() == ["dense", "dense"]
    assert math.isnan(back["tokens_per_s"][1]) and back["status"].tolist() == ["ok", "incomplete"]


def test_a_models_configurations_for_the_forecast():
    _, plans = expand_model_group({"preset": "tiny", "precisions": ["fp32", "bf16"]})
    df = pd.concat([_rows(p, lambda cid: 2e-3 if "/fp32/" in cid else 1e-3, lambda cid: 0.1) for p in plans])
    rows = model_rows(df.drop_duplicates("config_id"), plans)
    conf = as_configurations(rows)
    assert conf["status"].tolist() == ["ok", "ok"]
    assert conf["logical_flops_per_s"].tolist() == pytest.approx(
        [r.logical_flops_per_token / r.time_s_per_token for r in rows])
    rows[1].status, rows[1].time_s_per_token = "incomplete", None
    conf = as_configurations(rows)
    assert conf["status"].tolist() == ["ok", "incomplete"] and conf["logical_flops_per_s"].isna().tolist() == [False, True]
