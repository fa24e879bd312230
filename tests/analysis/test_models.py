"""Model-level figures: the measured whole step (or its extrapolation from two depths), the kernel-sum
prediction and what it leaves unexplained, the breakdown, models.csv and model_breakdown.csv, the forecast's E0.
Exact arithmetic on synthetic rows."""
import json
import math

import pandas as pd
import pytest

from hwprof.analysis.breakdown import breakdown
from hwprof.analysis.models import (COLUMNS, as_configurations, combine, model_rows, scale_depth,
                                    read_models, write_models)
from hwprof.running.modelplan import BASELINE, IN_STEP, MATMULS_IN_STEP, OPS_IN_STEP, expand_model_group


def _plan(phase="prefill", **group):
    _, plans = expand_model_group({"preset": "tiny", "precisions": ["bf16"], "phases": [phase], **group})
    return plans[0]


def _terms(plan):
    """The parts of the plan's kernel sum (OPS_IN_STEP and MATMULS_IN_STEP scale the kernels; not terms)."""
    return [p for p in plan.parts if p.role not in IN_STEP]


def _rows(plan, step_s, kernel_s, energy_of=None, status_of=None, flags_of=None, source="rapl", ops_in_step=None,
          matmuls_in_step=None, baseline_s=None):
    """results.csv-like rows: the plan's steps (and references) take step_s(cid) a call, every kernel kernel_s(cid),
    the ops in the step (OPS_IN_STEP) ops_in_step(cid), by default their glue and their ops' count-weighted
    sum (the ops as fast in the step as alone), and the matmuls in the step (MATMULS_IN_STEP) likewise; the
    baselines baseline_s(role), by default kernel_s (the glue's)."""
    recs = {}
    ids = [(s.config_id, True) for s in plan.steps] + [(s.reference_id, True) for s in plan.steps] + \
          [(p.config_id, False) for p in plan.parts] + [(p.reference_id, False) for p in plan.parts]
    for cid, is_step in ids:
        recs[cid] = dict(config_id=cid, status=(status_of or {}).get(cid, "ok"), reason="bad" if status_of else "",
                         logical_flops=1_000_000 if is_step else 0,
                         time_s_median=step_s(cid) if is_step else kernel_s(cid),
                         time_s_ci_low=None, time_s_ci_high=None, hef_time=None, hef_time_ci_low=None,
                         hef_time_ci_high=None, hef_energy=None,
                         energy_j=energy_of(cid) if energy_of else None,
                         flags=(flags_of or {}).get(cid, ""), energy_source=source)
    for p in plan.parts:
        if baseline_s and p.role in BASELINE.values():
            recs[p.config_id]["time_s_median"] = recs[p.reference_id]["time_s_median"] = baseline_s(p.role)
    kinds = {OPS_IN_STEP: (ops_in_step, lambda p: p.is_op),
             MATMULS_IN_STEP: (matmuls_in_step, lambda p: not p.is_op and p.role not in (*IN_STEP, "glue"))}
    for which in ("config_id", "reference_id"):
        for role, (given, member) in kinds.items():
            cid = next((getattr(p, which) for p in plan.parts if p.role == role), None)
            if cid is None:
                continue
            glue = next(getattr(p, which) for p in plan.parts if p.role == "glue")
            recs[cid]["time_s_median"] = given(cid) if given else recs[glue]["time_s_median"] + sum(
                p.count * recs[getattr(p, which)]["time_s_median"] for p in plan.parts if member(p))
    return pd.DataFrame(list(recs.values()))


def test_a_shallow_step_is_scaled_to_the_models_depth_by_its_kernels():
    # head 2, a layer 1, glue 0.4 at 32 layers: P(32) = 2 + 32 + 0.4 = 34.4, P(2) = 2 + 2 + 0.025 = 4.025
    assert scale_depth(5.0, 2.0, 1.0, 0.4, 2, 32) == pytest.approx(5.0 * 34.4 / 4.025)
    assert scale_depth(5.0, 2.0, 1.0, 0.0, 32, 32) == 5.0


def test_the_measured_step_the_kernel_sum_and_the_unexplained_share():
    plan = _plan()
    n = sum(p.count for p in _terms(plan))
    df = _rows(plan, lambda cid: 0.010 if "/fp32/" in cid else 0.004, lambda cid: 1e-4)
    r = combine(df, plan)
    assert r.status == "ok" and r.phase == "prefill" and r.layers_measured == "4" and r.tokens_per_step == 64
    assert r.time_s_per_token == pytest.approx(0.004 / 64) and r.tokens_per_s == pytest.approx(64 / 0.004)
    assert r.hef_time == pytest.approx(0.010 / 0.004)               # from the two steps' times (no paired hef here)
    assert r.predicted_time_s_per_token == pytest.approx(n * 1e-4 / 64)
    assert r.predicted_hef_time == pytest.approx(1.0)               # every kernel as fast as its reference here
    assert r.unexplained_share == pytest.approx(1 - n * 1e-4 / 0.004)
    assert r.logical_flops_per_token == pytest.approx(1e6 / 64) and r.energy_j_per_token is None


def test_the_ops_count_at_their_time_in_the_steps_sequence():
    plan = _plan()
    ops = sum(p.count for p in plan.parts if p.is_op)
    matmuls = sum(p.count for p in _terms(plan) if not p.is_op and p.role != "glue")
    assert ops and matmuls
    # every kernel 1e-5 alone, the glue 1e-5; in the step the ops and glue take 1e-5 + 3 x their sum alone
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-5, ops_in_step=lambda cid: 1e-5 + 3 * ops * 1e-5)
    r = combine(df, plan)
    assert r.predicted_time_s_per_token == pytest.approx((matmuls * 1e-5 + 1e-5 + 3 * ops * 1e-5) / 64)
    rows = {b["role"]: b for b in breakdown(df, plan)}
    assert OPS_IN_STEP not in rows                                   # a scale, not a term
    assert rows["rmsnorm"]["time_s_per_token"] == pytest.approx(3 * rows["rmsnorm"]["alone_s_per_token"])
    assert rows["mlp_up"]["time_s_per_token"] == rows["mlp_up"]["alone_s_per_token"]
    assert sum(b["time_s_per_token"] for b in rows.values()) == pytest.approx(r.time_s_per_token)


def test_the_matmuls_and_attention_count_at_their_time_in_the_steps_sequence():
    plan = _plan()
    ops = sum(p.count for p in plan.parts if p.is_op)
    matmuls = sum(p.count for p in _terms(plan) if not p.is_op and p.role != "glue")
    # every kernel 1e-5 alone, the glue 1e-5; in the step the matmuls and glue take 1e-5 + 1.5 x their sum alone
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-5, matmuls_in_step=lambda cid: 1e-5 + 1.5 * matmuls * 1e-5)
    r = combine(df, plan)
    assert r.predicted_time_s_per_token == pytest.approx((1.5 * matmuls * 1e-5 + 1e-5 + ops * 1e-5) / 64)
    # the sum of the kernels alone is kept beside it: what operator profiles alone would predict
    assert r.predicted_alone_time_s_per_token == pytest.approx((matmuls * 1e-5 + 1e-5 + ops * 1e-5) / 64)
    rows = {b["role"]: b for b in breakdown(df, plan)}
    assert MATMULS_IN_STEP not in rows                               # a scale, not a term
    assert rows["mlp_up"]["time_s_per_token"] == pytest.approx(1.5 * rows["mlp_up"]["alone_s_per_token"])
    assert rows["attention"]["time_s_per_token"] == pytest.approx(1.5 * rows["attention"]["alone_s_per_token"])
    assert rows["rmsnorm"]["time_s_per_token"] == rows["rmsnorm"]["alone_s_per_token"]
    assert rows["glue"]["time_s_per_token"] == rows["glue"]["alone_s_per_token"]
    assert sum(b["time_s_per_token"] for b in rows.values()) == pytest.approx(r.time_s_per_token)


def test_each_in_step_figure_is_read_against_its_baseline_not_the_glue():
    from dataclasses import replace
    plan = _plan()
    ops = sum(p.count for p in plan.parts if p.is_op)
    matmuls = sum(p.count for p in _terms(plan) if not p.is_op and p.role != "glue")
    # the glue 1e-5; the baselines add their stubs' writes: 3e-5 (matmul stubs), 1e-5 (op stubs); in the step the
    # ops take 2x their time alone, the matmuls 1.5x, each on top of its baseline
    base = {BASELINE[OPS_IN_STEP]: 4e-5, BASELINE[MATMULS_IN_STEP]: 2e-5}
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-5, baseline_s=base.get,
               ops_in_step=lambda cid: 4e-5 + 2 * ops * 1e-5, matmuls_in_step=lambda cid: 2e-5 + 1.5 * matmuls * 1e-5)
    r = combine(df, plan)
    assert r.predicted_time_s_per_token == pytest.approx((1e-5 + 2 * ops * 1e-5 + 1.5 * matmuls * 1e-5) / 64)
    rows = {b["role"]: b for b in breakdown(df, plan)}
    assert not set(BASELINE.values()) & set(rows)                    # not terms either
    assert rows["rmsnorm"]["time_s_per_token"] == pytest.approx(2 * rows["rmsnorm"]["alone_s_per_token"])
    # a run planned before the baselines: its in-step figures are read against the glue
    old = replace(plan, parts=[p for p in plan.parts if p.role not in BASELINE.values()])
    r = combine(df, old)
    assert r.predicted_time_s_per_token == pytest.approx((1e-5 + (3e-5 + 2 * ops * 1e-5) + (1e-5 + 1.5 * matmuls * 1e-5)) / 64)


def test_an_in_step_figure_no_larger_than_its_glue_leaves_the_kernels_at_their_time_alone():
    plan = _plan()
    # a column the hollow steps have no figure for (their FLOPs are 0), or noise below the glue: no scale
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-5, matmuls_in_step=lambda cid: 1e-5,
               ops_in_step=lambda cid: 0.5e-5)
    r = combine(df, plan)
    assert r.predicted_time_s_per_token == pytest.approx(r.predicted_alone_time_s_per_token)


@pytest.mark.parametrize("kernel_s, flagged", [(0.0040 * 0.86, False), (0.0040 * 0.84, True), (0.0040 * 1.16, True),
                                               (0.0040, False)])
def test_a_step_its_kernels_do_not_account_for_beyond_15_percent_is_flagged_unexplained(kernel_s, flagged):
    plan = _plan()
    n = sum(p.count for p in _terms(plan))
    r = combine(_rows(plan, lambda cid: 0.004, lambda cid: kernel_s / n), plan)
    assert r.unexplained_share == pytest.approx(1 - kernel_s / 0.004)
    assert ("unexplained" in r.flags.split(",")) == flagged


def test_a_paired_hef_and_its_interval_come_from_the_step_row():
    plan = _plan()
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-4)
    step = plan.steps[0].config_id
    df.loc[df.config_id == step, ["hef_time", "hef_time_ci_low", "hef_time_ci_high", "time_s_ci_low", "time_s_ci_high"]] = \
        [1.9, 1.8, 2.0, 0.0038, 0.0042]
    r = combine(df, plan)
    assert (r.hef_time, r.hef_time_ci_low, r.hef_time_ci_high) == (1.9, 1.8, 2.0)
    assert r.time_s_per_token_ci_low == pytest.approx(0.0038 / 64) and r.time_s_per_token_ci_high == pytest.approx(0.0042 / 64)


def test_a_shallow_step_is_scaled_and_says_so():
    plan = _plan(layers=1)                                           # tiny has 4 layers: a 1-layer step
    assert [s.depth for s in plan.steps] == [1]
    t = {plan.steps[0].config_id: 3e-3, plan.steps[0].reference_id: 6e-3}
    r = combine(_rows(plan, t.get, lambda cid: 1e-5), plan)
    parts = _terms(plan)
    layer = sum(p.count // 4 for p in parts if p.count % 4 == 0 and p.role != "glue") * 1e-5
    head = sum(p.count for p in parts if p.count % 4 and p.role != "glue") * 1e-5
    glue = 1e-5
    assert r.layers_measured == "1" and "scaled to 4" in r.reason
    assert r.time_s_per_token == pytest.approx(scale_depth(3e-3, head, layer, glue, 1, 4) / 64)
    assert r.hef_time == pytest.approx(2.0) and r.hef_time_ci_low is None     # no paired interval once scaled


def test_a_missing_step_is_incomplete_and_a_missing_kernel_leaves_the_measured_figures():
    plan = _plan()
    step = plan.steps[0].config_id
    r = combine(_rows(plan, lambda cid: 1e-3, lambda cid: 1e-5, status_of={step: "error"}), plan)
    assert r.status == "incomplete" and "step 4 layers" in r.reason and r.time_s_per_token is None
    head = next(p for p in plan.parts if p.role == "lm_head")
    r = combine(_rows(plan, lambda cid: 1e-3, lambda cid: 1e-5, status_of={head.config_id: "error"}), plan)
    assert r.status == "ok" and r.time_s_per_token == pytest.approx(1e-3 / 64)
    assert r.predicted_time_s_per_token is None and r.unexplained_share is None and "lm_head" in r.reason


def test_energy_figures_and_mixed_sources():
    plan = _plan("decode")
    r = combine(_rows(plan, lambda cid: 2e-3, lambda cid: 1e-5, energy_of=lambda cid: 0.3 if "/fp32/" in cid else 0.1), plan)
    assert r.tokens_per_step == 1 and r.context == 64 and r.energy_j_per_token == pytest.approx(0.1)
    assert r.tokens_per_j == pytest.approx(10.0) and r.hef_energy == pytest.approx(3.0)
    assert r.logical_flops_per_j == pytest.approx(1e6 / 0.1) and r.energy_source == "rapl"


@pytest.mark.parametrize("flag", ["contended", "noisy", "estimate", "few-rounds", "reference-impl", "slow-machine"])
def test_the_steps_caveats_carry_to_the_model_row(flag):
    plan = _plan()
    n = sum(p.count for p in _terms(plan))                           # kernels that account for the step
    r = combine(_rows(plan, lambda cid: 1e-3, lambda cid: 1e-3 / n,
                      flags_of={plan.steps[0].config_id: f"{flag},upcast-fp32"}), plan)
    assert r.flags == flag                                           # upcast-fp32 describes a kernel, not the model


def test_a_training_plan_is_the_kernel_sum_and_says_so():
    _, plans = expand_model_group({"preset": "tiny", "passes": ["fwd+bwd"]})
    (plan,) = plans
    assert plan.phase == "train" and not plan.steps
    df = _rows(plan, lambda cid: 0.0, lambda cid: 2e-4, energy_of=lambda cid: 0.01)
    r = combine(df, plan)
    runs = sum(p.count for p in plan.parts)
    assert r.status == "ok" and "kernel sum" in r.reason and r.time_s_per_token == pytest.approx(runs * 2e-4 / 64)
    assert r.predicted_time_s_per_token == r.time_s_per_token and r.unexplained_share is None


def test_the_breakdown_splits_the_measured_step_and_names_the_rest():
    plan = _plan()
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-4)
    parts = breakdown(df, plan)
    assert {d["group"] for d in parts} >= {"projections", "attention", "mlp", "norms", "rotary", "glue", "unexplained"}
    assert sum(d["share_of_step"] for d in parts) == pytest.approx(1.0)
    assert sum(d["time_s_per_token"] for d in parts) == pytest.approx(0.004 / 64)


def test_models_csv_and_its_breakdown_round_trip(tmp_path):
    specs, plans = expand_model_group({"preset": "tiny", "precisions": ["fp32", "bf16"]})
    df = _rows(plans[0], lambda cid: 1e-3, lambda cid: 1e-5)
    for plan in plans[1:]:
        df = pd.concat([df, _rows(plan, lambda cid: 1e-3, lambda cid: 1e-5)]).drop_duplicates("config_id")
    meta = {"suite": {"models": [p.to_json() for p in plans]}}
    assert write_models(tmp_path, df, meta) == tmp_path / "models.csv"
    back = read_models(tmp_path)
    assert list(back.columns) == COLUMNS and len(back) == 4 and set(back["phase"]) == {"prefill", "decode"}
    assert list(back["layers_measured"]) == ["4"] * 4
    parts = pd.read_csv(tmp_path / "model_breakdown.csv")
    assert set(parts["phase"]) == {"prefill", "decode"} and "unexplained" in set(parts["group"])
    assert write_models(tmp_path, df, {"suite": {}}) is None


def test_the_forecast_takes_e0_from_the_measured_step_of_a_phase():
    specs, plans = expand_model_group({"preset": "tiny"})
    df = pd.concat([_rows(p, lambda cid: 2e-3, lambda cid: 1e-5, energy_of=lambda cid: 0.2) for p in plans])
    configs = as_configurations(model_rows(df.drop_duplicates("config_id"), plans))
    assert list(configs["phase"]) == ["prefill", "decode"]
    assert configs.loc[0, "logical_flops_per_j"] == pytest.approx(1e6 / 0.2)
    assert configs.loc[0, "config_id"] == "model/tiny/prefill/fp32/dense/fwd"
    assert configs.loc[1, "tokens_per_j"] == pytest.approx(1 / 0.2) and math.isclose(configs.loc[0, "tokens_per_j"], 64 / 0.2)
    json.dumps(configs.to_dict("records"))
