"""[[model]] groups in suites: expansion into configurations, plans, tags and the one-line refusals."""
import pytest

from hwprof.errors import BadInput
from hwprof.running.modelplan import ModelPlan, expand_model_group, model_tags
from hwprof.running.suite import load_suite, parse_suite


def test_a_model_group_expands_per_phase_into_its_step_its_kernels_and_its_glue():
    specs, plans = expand_model_group({"preset": "tiny", "precisions": ["bf16", "w8a16"]})
    assert [(p.precision, p.phase) for p in plans] == [("bf16", "prefill"), ("bf16", "decode"),
                                                        ("w8a16", "prefill"), ("w8a16", "decode")]
    pre, dec = plans[2], plans[3]
    assert [s.config_id for s in pre.steps] == ["step/tiny/prefill/1x64x0/L4/w8a16/dense"]
    assert pre.steps[0].reference_id == "step/tiny/prefill/1x64x0/L4/fp32/dense"
    roles = {p.role: p for p in pre.parts}
    assert roles["q_proj"].config_id == "linear/64x256x256/w8a16/dense/fwd" and roles["q_proj"].count == 4
    assert roles["q_proj"].reference_id == "linear/64x256x256/fp32/dense/fwd"
    # the reference step's attention is SDPA's own choice in fp32, not the kernel-level math reference
    assert roles["attention"].config_id == "attention/1x4x64x64x64x2/bf16/causal/auto/fwd"
    assert roles["attention"].reference_id == "attention/1x4x64x64x64x2/fp32/causal/auto/fwd"
    assert roles["rmsnorm"].config_id == "op/rmsnorm/64x256/bf16/fwd" and roles["rmsnorm"].count == 8
    assert roles["glue"].config_id == "step/tiny/prefill/1x64x0/L4/bf16/dense/hollow"
    # the ops as the step runs them: the step with its matmuls and attention stubbed, against its fp32 twin
    assert roles["ops_in_step"].config_id == "step/tiny/prefill/1x64x0/L4/bf16/dense/hollow+ops"
    assert roles["ops_in_step"].reference_id == "step/tiny/prefill/1x64x0/L4/fp32/dense/hollow+ops"
    # and the matmuls and attention as the step runs them: its ops stubbed, its layers in the step's scheme
    assert roles["matmuls_in_step"].config_id == "step/tiny/prefill/1x64x0/L4/w8a16/dense/hollow+mm"
    assert roles["matmuls_in_step"].reference_id == "step/tiny/prefill/1x64x0/L4/fp32/dense/hollow+mm"
    # each read against its baseline: nothing live, the stubs writing their outputs as its own stubs do
    assert roles["ops_in_step_baseline"].config_id == "step/tiny/prefill/1x64x0/L4/bf16/dense/hollow+mm-writes"
    assert roles["matmuls_in_step_baseline"].config_id == "step/tiny/prefill/1x64x0/L4/bf16/dense/hollow+ops-writes"
    assert roles["matmuls_in_step_baseline"].reference_id == "step/tiny/prefill/1x64x0/L4/fp32/dense/hollow+ops-writes"
    assert roles["rmsnorm"].is_op and not roles["q_proj"].is_op and not roles["glue"].is_op
    droles = {p.role: p for p in dec.parts}
    assert droles["q_proj"].config_id == "linear/1x256x256/w8a16/dense/fwd"
    assert droles["attention"].config_id == "attention/1x4x1x65x64x2/bf16/none/auto/fwd"   # one query, 64 + 1 keys
    assert droles["kv_append"].count == 8 and droles["lm_head"].count == 1
    ids = {s.config_id for s in specs}
    assert all(p.reference_id in ids and p.config_id in ids for plan in plans for p in plan.parts)
    back = ModelPlan.from_json(plans[0].to_json())
    assert back.parts == plans[0].parts and back.steps == plans[0].steps and back.model == plans[0].model


def test_a_large_model_is_measured_shallower_and_layers_chooses_how_deep():
    _, plans = expand_model_group({"preset": "llama3-8b", "phases": ["decode"]})
    assert [s.depth for s in plans[0].steps] == [2]                    # 28 GB of fp32 weights: a 2-layer step
    _, plans = expand_model_group({"preset": "tiny", "layers": 1, "phases": ["prefill"]})
    assert [s.depth for s in plans[0].steps] == [1]
    _, plans = expand_model_group({"preset": "llama3-8b", "layers": "all", "phases": ["prefill"]})
    assert [s.depth for s in plans[0].steps] == [32]
    with pytest.raises(ValueError, match="layers must be"):
        expand_model_group({"preset": "tiny", "layers": 0})


def test_the_matmuls_in_the_step_are_measured_only_where_the_step_is_dense_and_whole():
    # their figure scales the whole model's matmuls: a shallow step's, or a pruned one's, would not match it
    def roles(**group):
        _, plans = expand_model_group({"preset": "tiny", "phases": ["decode"], **group})
        return {p.role for p in plans[0].parts}
    assert {"glue", "ops_in_step", "ops_in_step_baseline", "matmuls_in_step", "matmuls_in_step_baseline"} <= roles()
    assert {"ops_in_step", "ops_in_step_baseline"} <= roles(layers=2)
    for shallow_or_pruned in (roles(layers=2), roles(sparsity=["unstructured:0.5"])):
        assert not {"matmuls_in_step", "matmuls_in_step_baseline"} & shallow_or_pruned


def test_gpt2s_conv1d_layers_stay_bf16_under_a_scheme_as_torchao_leaves_them():
    _, plans = expand_model_group({"preset": "gpt2-small", "precisions": ["w8a16"], "phases": ["decode"]})
    roles = {p.role: p for p in plans[0].parts}
    assert roles["qkv"].config_id == "conv1d/1x2304x768/bf16/dense/fwd"
    assert roles["lm_head"].config_id == "linear/1x50257x768/w8a16/dense/fwd"   # an nn.Linear: quantized


def test_sparsity_prunes_the_layers_weights_but_not_the_lm_head():
    specs, plans = expand_model_group({"preset": "tiny", "sparsity": ["unstructured:0.1"], "phases": ["prefill"]})
    roles = {p.role: p for p in plans[0].parts}
    assert roles["mlp_up"].config_id == "linear/64x688x256/fp32/unstructured:0.1/fwd"
    assert roles["lm_head"].config_id == "linear/64x4096x256/fp32/dense/fwd"
    assert plans[0].steps[0].config_id == "step/tiny/prefill/1x64x0/L4/fp32/unstructured:0.1"


def test_a_training_pass_is_a_kernel_sum_plan():
    _, plans = expand_model_group({"preset": "tiny", "passes": ["fwd+bwd"]})
    assert [p.phase for p in plans] == ["train"] and not plans[0].steps
    assert {p.role for p in plans[0].parts} >= {"qkv", "attention", "lm_head"}


def test_a_suite_with_models_runs_each_kernel_once_and_records_the_plans():
    suite = parse_suite('[[model]]\npreset = "tiny"\nprecisions = ["fp32", "bf16"]\nphases = ["prefill"]\n'
                        '[[model]]\npreset = "tiny"\nname = "tiny-b2"\nbatch = 2\nprecisions = ["bf16"]\n'
                        'phases = ["prefill"]\n')
    ids = [s.config_id for s in suite.specs]
    assert len(ids) == len(set(ids))
    assert [p.key for p in suite.models] == [("tiny", "prefill", "fp32", "dense", "fwd"),
                                            ("tiny", "prefill", "bf16", "dense", "fwd"),
                                            ("tiny-b2", "prefill", "bf16", "dense", "fwd")]
    assert len(suite.resolved()["models"]) == 3
    tags = model_tags(suite.models)
    assert tags["linear/64x256x256/fp32/dense/fwd"] == "tiny"
    assert tags["linear/128x256x256/fp32/dense/fwd"] == "tiny-b2"     # the reference of tiny-b2's bf16 q_proj
    assert tags["step/tiny-b2/prefill/2x64x0/L4/fp32/dense"] == "tiny-b2"


def test_model_presets_are_suites_of_their_own():
    suite = load_suite("model:tiny")
    assert suite.name == "model-tiny" and suite.budget_s == 1.6 and {p.precision for p in suite.models} == {"fp32", "bf16"}
    with pytest.raises(BadInput, match="no such model preset"):
        load_suite("model:llama9")


@pytest.mark.parametrize("body,words", [
    ('name = "m"\nd_model = 64\nn_layers = 1\nn_heads = 4\nn_kv_heads = 4\nd_ff = 8\nvocab = 8', "missing seq_len"),
    ('preset = "tiny"\nd_model = -64', "d_model must be a positive integer"),
    ('preset = "tiny"\nn_heads = 3', "n_heads 3 does not divide d_model 256"),
    ('preset = "tiny"\nn_kv_heads = 3', "n_kv_heads 3 does not divide n_heads 4"),
    ('preset = "tiny"\nlayers = "some"', "layers must be"),
    ('preset = "tiny"\nphases = ["train"]', "unknown phase 'train'"),
    ('preset = "tiny"\nfamily = "gpt2"', "the gpt2 family has an ungated MLP"),
    ('preset = "tiny"\ncontext = -1', "context must be a non-negative integer"),
    ('name = 7\npreset = "tiny"', "name must be a non-empty string"),
    ('name = ["a"]\npreset = "tiny"', "name must be a non-empty string"),
    ('preset = "tiny"\nimplementation = "vllm"', "implementation must be"),
    ('preset = "tiny"\nprecisions = ["fp9"]', "unknown precision 'fp9'"),
    ('preset = "tiny"\nprecisions = []', "'precisions' must be a non-empty list"),
    ('preset = "tiny"\ndevice = "tpu"', "must be \"cpu\" or \"cuda\""),
])
def test_bad_model_groups_are_bad_input_with_one_line(body, words):
    with pytest.raises(BadInput) as e:
        parse_suite(f"[[model]]\n{body}\n", "s.toml")
    assert words in str(e.value) and "[[model]] #1" in str(e.value) and "\n" not in str(e.value)


def test_one_name_for_two_shapes_is_refused():
    with pytest.raises(BadInput, match="used twice with different shapes"):
        parse_suite('[[model]]\npreset = "tiny"\n[[model]]\npreset = "tiny"\nseq_len = 32\n')


def test_bad_model_group_from_the_cli_is_exit_2(tmp_path, capsys):
    from hwprof.presentation.cli import main
    suite = tmp_path / "m.toml"
    suite.write_text('[[model]]\npreset = "tiny"\nn_kv_heads = 3\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "n_kv_heads 3 does not divide n_heads 4" in err and len(err.splitlines()) == 1
    assert main(["run", "--suite", "model:gpt5", "--out", str(tmp_path)]) == 2


def test_a_steps_hollow_twins_follow_it_into_its_block_so_that_their_rounds_alternate():
    from hwprof.measuring.measure import Policy
    from hwprof.running.blocks import plan_blocks, plan_families
    specs, _ = expand_model_group({"preset": "tiny", "precisions": ["fp32", "bf16"], "phases": ["decode"]})
    families = plan_families(specs)
    step = "step/tiny/decode/1x1x64/L4/fp32/dense"
    twins = ["/hollow", "/hollow+ops", "/hollow+mm-writes", "/hollow+mm", "/hollow+ops-writes"]
    assert [f.reference.config_id for f in families[:6]] == [step] + [step + t for t in twins]
    first = plan_blocks(families, Policy(rounds=8, round_s=0.1, min_window_s=0.8), 1 << 40)[0]
    assert families[:6] == first[:6]        # measured pass by pass together, not minutes apart


def test_no_block_boundary_separates_a_step_from_its_hollow_twins_unless_memory_does():
    from hwprof.measuring.measure import Policy
    from hwprof.running.blocks import MEMORY_SHARE, plan_blocks, plan_families
    specs, _ = expand_model_group({"preset": "tiny", "precisions": ["fp32", "bf16"], "phases": ["decode"]})
    families = plan_families(specs)
    blocks = plan_blocks(families, Policy(span_s=0.0), 1 << 40)     # a span no two families fit in
    assert blocks[0] == families[:6] and all(len(b) == 1 for b in blocks[1:])
    specs = expand_model_group({"preset": "llama-small", "precisions": ["fp32", "bf16"]})[0]
    small = plan_families(list({s.config_id: s for s in specs}.values()))          # as the suite holds them
    assert plan_blocks(small, Policy(span_s=0.0), 16 << 30)[0] == small[:6]      # on a 16 GiB machine
    together = sum(f.estimate_bytes() for f in families[:6])
    apart = plan_blocks(families, Policy(span_s=0.0), int(together / MEMORY_SHARE) - 1)
    assert [len(b) for b in apart[:6]] == [1] * 6                   # too big together: one family a block
