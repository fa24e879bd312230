"""Blocks of families: how the sweep groups configurations, and that passes interleave and rebuild them."""
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec
from hwprof.measuring.measure import Policy
from hwprof.running.blocks import MEMORY_SHARE, plan_blocks, plan_families

M = MatmulSpec
SPECS = [M((64, 64, 64), "fp32"), M((64, 64, 64), "int8"), M((32, 32, 32), "fp32"), M((64, 64, 64), "bf16"),
         M((64, 64, 64), "fp32", SparsitySpec.parse("unstructured:0.5")),
         AttentionSpec((1, 2, 32, 32, 16), "fp32", "causal", "flash")]


def test_families_group_by_reference_in_order_of_first_appearance():
    fams = plan_families(SPECS)
    assert [f.reference.config_id for f in fams] == [
        "matmul/64x64x64/fp32/dense/fwd", "matmul/32x32x32/fp32/dense/fwd",
        "attention/1x2x32x32x16/fp32/causal/math/fwd"]
    assert [len(f.configs) for f in fams] == [4, 1, 1]
    assert fams[2].reference not in fams[2].configs          # its reference was measured before (resume)


def test_blocks_fill_up_to_the_span_and_a_big_family_goes_alone():
    fams = plan_families(SPECS)
    p = Policy(rounds=8, round_s=0.1, min_window_s=0.8)      # 1.6 s per configuration
    assert fams[0].estimate_s(p) == 4 * 1.6
    free = 1 << 40
    assert [len(b) for b in plan_blocks(fams, Policy(span_s=120.0), free)] == [3]
    assert [len(b) for b in plan_blocks(fams, Policy(span_s=0.0), free)] == [1, 1, 1]
    one_and_two = fams[0].estimate_s(Policy()) + fams[1].estimate_s(Policy())
    assert [len(b) for b in plan_blocks(fams, Policy(span_s=one_and_two), free)] == [2, 1]


def test_blocks_keep_their_cases_within_a_share_of_free_memory():
    fams = plan_families(SPECS)
    first_two = fams[0].estimate_bytes() + fams[1].estimate_bytes()
    assert [len(b) for b in plan_blocks(fams, Policy(), int(first_two / MEMORY_SHARE))] == [2, 1]
    assert [len(b) for b in plan_blocks(fams, Policy(), 0)] == [1, 1, 1]


def test_a_run_interleaves_families_pass_by_pass_and_rebuilds_inputs_between_passes(tiny_suite, fast_options,
                                                                                    monkeypatch):
    import collections

    import hwprof
    from hwprof import kernels
    from hwprof.measuring.rounds import Family
    int8 = "matmul/64x64x64/int8/dense/fwd"
    builds, probed, rounds, runs = collections.Counter(), collections.Counter(), [], set()
    real_build, real_round = kernels.build_case, Family.round

    def build(spec, *a, **kw):
        builds[spec.config_id] += 1
        probed[spec.config_id] += kw.get("probe", True)
        case, extra = real_build(spec, *a, **kw)
        if spec.config_id == int8:
            runs.add(case.run)
        return case, extra

    def round_(self):
        # which family, and whether the int8 case took part: a case that has its rounds stops while others
        # of its family go on (on CI's Xeon int8 had its 7 while the family ran 10)
        rounds.append((id(self), any(a.fn in runs for a in self.active)))
        return real_round(self)
    monkeypatch.setattr(kernels, "build_case", build)
    monkeypatch.setattr(Family, "round", round_)
    df = hwprof.run_suite(str(tiny_suite), **fast_options).set_index("config_id")
    families = [f for f, _ in rounds]
    matmul, attention = families[0], families[1]
    assert families[:4] == [matmul, attention, matmul, attention]        # one round of each family per pass
    took_part = sum(1 for f, active in rounds if f == matmul and active)
    assert took_part >= 7                                                # the suite's rounds, at least
    assert builds[int8] == took_part                       # built once, then again after each pass it goes on
    assert probed[int8] == 1                                             # probed once: it is known to run
    assert builds["matmul/64x64x64/tf32/dense/fwd"] == 1                 # unsupported: never built again
    assert df.loc[int8, "rounds"] + df.loc[int8, "rounds_remeasured"] == took_part


def test_a_rebuilt_sparse_case_keeps_the_pruning_error_its_first_build_computed(tmp_path, fast_options):
    import hwprof
    suite = tmp_path / "sparse.toml"
    suite.write_text('name = "s"\nbudget_s = 0.05\nci_target = 0.5\nwarmup_s = 0.0\nmin_window_s = 0.0\n'
                     'rounds = 3\nround_s = 0.0\n[[matmul]]\nshapes = [[64, 64, 64]]\nprecisions = ["fp32"]\n'
                     'sparsity = ["dense", "unstructured:0.1"]\n')
    row = hwprof.run_suite(str(suite), **fast_options).set_index("config_id").loc[
        "matmul/64x64x64/fp32/unstructured:0.1/fwd"]
    assert row["rounds"] >= 3 and 0.3 < row["pruning_error"] < 1.0      # rebuilt twice at least, error kept


def test_progress_moves_pass_by_pass_before_the_block_writes_its_rows(tiny_suite, fast_options):
    from contextlib import contextmanager

    from hwprof.running.runner import Listener, execute
    from hwprof.running.session import RunOptions
    heard = []

    @contextmanager
    def display(total, done):
        heard.append(("start", total, done))
        yield Listener(row=lambda row: heard.append(("row", row.config_id)),
                       advance=lambda completed, label: heard.append(("pass", completed, label)))
    result = execute(RunOptions(suite=str(tiny_suite), **fast_options), progress=display)
    total = heard[0][1]
    passes = [h for h in heard if h[0] == "pass"]
    first_row = next(i for i, h in enumerate(heard) if h[0] == "row")
    assert len(passes) > 1 and all(h[0] == "pass" for h in heard[1:first_row])
    assert [h[2] for h in passes] == [f"pass {i + 1}" for i in range(len(passes))]
    done = [h[1] for h in passes]
    assert done == sorted(done) and 0 < done[0] < total and done[-1] == total     # the last pass finishes them
    assert [h[1] for h in heard if h[0] == "row"] == list(result.results["config_id"])


def test_a_model_step_is_built_once_while_its_kernels_are_rebuilt_every_pass(tmp_path, fast_options, monkeypatch):
    import collections

    import hwprof
    from hwprof import kernels
    builds, real_build = collections.Counter(), kernels.build_case

    def build(spec, *a, **kw):
        builds[spec.config_id] += 1
        return real_build(spec, *a, **kw)
    monkeypatch.setattr(kernels, "build_case", build)
    # a 32 MiB cache, as on CI: on a 105 MiB one each rebuilt layer cycles 420 MiB of copies, and this
    # test's 0.06 s budget then leaves the steps one round (what it checks is which cases are rebuilt)
    from hwprof.kernels import caches
    monkeypatch.setattr(caches, "last_level_cache_bytes", lambda: 32 * 2**20)
    # a step is warmed when its window holds one call; with the 2 ms batch floor a tiny decode step (1-3 ms)
    # falls on either side of one call by the machine's speed: a 50 µs floor makes every step one call a batch
    import functools

    from hwprof.measuring.measure import Policy
    from hwprof.running import session
    monkeypatch.setattr(session, "Policy", functools.partial(Policy, min_batch_s=5e-5))
    suite = tmp_path / "m.toml"
    suite.write_text('name = "m"\nbudget_s = 0.06\nci_target = 0.5\nwarmup_s = 0.0\nmin_window_s = 0.0\n'
                     'rounds = 3\nround_s = 0.0\n[[model]]\npreset = "tiny"\nprecisions = ["fp32", "bf16"]\n'
                     'phases = ["decode"]\n')
    df = hwprof.run_suite(str(suite), **fast_options).set_index("config_id")
    steps = [c for c in df.index if c.startswith("step/")]
    linear = next(c for c in df.index if c.startswith("linear/") and "/bf16/" in c)
    assert steps and all(builds[c] == 1 for c in steps)                  # a step keeps its case, warm
    assert all(df.loc[c, "rounds"] >= 2 for c in steps)                 # measured over several passes
    assert builds[linear] >= 3                                           # a kernel is rebuilt every pass
    import json
    [run_dir] = (tmp_path / "reports").iterdir()
    windows = [w for line in (run_dir / "rounds.jsonl").read_text().splitlines()
               for w in json.loads(line).get("windows", [])]
    warmed = collections.defaultdict(list)
    for w in windows:
        warmed[w["id"]].append(w["warm_s"] > 0)
    assert all(all(warmed[c]) for c in steps) and not any(warmed[linear])    # a step is warmed each round


def test_a_warmed_steps_cap_buys_the_suites_rounds_within_a_minute():
    from hwprof.measuring.arm import Arm
    from hwprof.running.cases import STEP_CAP_S, step_cap
    step = Arm(lambda: None, call_s=1.0, cost_s=1.0, cap_s=2 * 1.6 + 1.0, warm_each_round=True)
    ref = Arm(lambda: None, call_s=0.3, warm_each_round=True)
    # a round: the step's warm-up and window (2 x 1.0 s) and the reference's (2 x 0.3 s); 8 of them after its probe
    assert step_cap(step, ref, rounds=8, round_s=0.1) == 1.0 + 8 * (2.0 + 0.6)
    assert step_cap(step, None, rounds=8, round_s=0.1) == 1.0 + 8 * 2.0
    slow = Arm(lambda: None, call_s=10.0, cost_s=10.0, cap_s=2 * 1.6 + 10.0, warm_each_round=True)
    assert step_cap(slow, ref, rounds=8, round_s=0.1) == STEP_CAP_S          # a minute at most
    short = Arm(lambda: None, call_s=0.01, cost_s=0.01, cap_s=5.0, warm_each_round=True)
    assert step_cap(short, None, rounds=2, round_s=0.1) == 5.0               # never below the cap it had
