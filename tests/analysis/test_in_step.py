"""A step's kernels as the step runs them: the unexplained share round by round, each round of the step paired
with its hollow twins' rounds of the same pass, and the interval that gives models.csv's share."""
import pytest

from hwprof.analysis.in_step import round_shares
from hwprof.analysis.models import combine
from hwprof.running.modelplan import BASELINE, MATMULS_IN_STEP, OPS_IN_STEP
from tests.analysis.test_models import _plan, _rows


def _paired_rounds(plan, n=9, seed=0):
    """Kept rounds of the step's and its twins' families (each keyed by its reference's config_id, as the
    journal keys them): the step 4 ms, glue 0.1, ops in step 1.1 over a baseline of 0.2, matmuls in step 2.5 over
    0.15 (ms), each round's step moved by the host by up to +-5%, its twins with it."""
    import random
    rng = random.Random(seed)
    times = {"glue": 1e-4, OPS_IN_STEP: 1.1e-3, BASELINE[OPS_IN_STEP]: 2e-4, MATMULS_IN_STEP: 2.5e-3,
             BASELINE[MATMULS_IN_STEP]: 1.5e-4}
    roles = {p.role: p for p in plan.parts}
    step = plan.steps[0]
    rounds = {}
    for _ in range(n):
        host = 1 + rng.uniform(-0.05, 0.05)
        own = [(step.reference_id, step.config_id, 4e-3)] + [(roles[r].reference_id, roles[r].config_id, t)
                                                              for r, t in times.items()]
        for family, cid, t in own:
            windows = [{"id": family, "samples": [t * host * 1.3] * 5, "calls": 5, "wall": 0.1}] if family != cid else []
            windows.append({"id": cid, "samples": [t * host * (1 + 0.01 * k) for k in range(5)], "calls": 5, "wall": 0.1})
            rounds.setdefault(family, []).append({"type": "round", "family": family, "kept": True, "windows": windows})
    return rounds, times


def test_the_unexplained_share_gets_an_interval_from_the_steps_rounds_paired_with_its_twins():
    plan = _plan()
    rounds, t = _paired_rounds(plan)
    shares = round_shares(rounds, plan)
    # the host moves every family of a round alike: each round's share is the same, 1 - 3.35 / 4
    assert len(shares) == 9 and shares == pytest.approx([1 - (1e-4 + 0.9e-3 + 2.35e-3) / 4e-3] * 9, rel=1e-6)
    df = _rows(plan, lambda cid: 0.004, lambda cid: t["glue"] if cid.endswith("/hollow") else 1e-5,
               baseline_s=lambda role: t[role], ops_in_step=lambda cid: t[OPS_IN_STEP],
               matmuls_in_step=lambda cid: t[MATMULS_IN_STEP])
    r = combine(df, plan, rounds)
    assert r.unexplained_share == pytest.approx(0.1625)
    assert r.unexplained_share_ci_low <= r.unexplained_share <= r.unexplained_share_ci_high
    assert r.unexplained_share_ci_high - r.unexplained_share_ci_low < 0.01
    assert combine(df, plan).unexplained_share_ci_low is None                  # no rounds given: no interval


def test_no_interval_where_a_twin_is_missing_or_the_rounds_are_too_few():
    shallow = _plan(layers=2)                      # no matmuls in the step: the kernels alone would enter
    assert round_shares(_paired_rounds(_plan())[0], shallow) == []
    plan = _plan()
    rounds, t = _paired_rounds(plan, n=3)
    df = _rows(plan, lambda cid: 0.004, lambda cid: 1e-5)
    assert len(round_shares(rounds, plan)) == 3 and combine(df, plan, rounds).unexplained_share_ci_low is None
