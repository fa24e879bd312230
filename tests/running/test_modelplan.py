"""[[model]] groups in suites: expansion into configurations, plans, tags and the one-line refusals."""
import pytest

from hwprof.errors import BadInput
from hwprof.running.modelplan import ModelPlan, expand_model_group, model_tags
from hwprof.running.suite import load_suite, parse_suite


def test_a_model_group_expands_to_its_kernels_and_their_references():
    specs, plans = expand_model_group({"preset": "tiny", "precisions": ["bf16", "w8a16"]})
    assert len(plans) == 2 and [p.precision for p in plans] == ["bf16", "w8a16"]
    roles = {p.role: p for p in plans[1].parts}
    assert roles["qkv"].config_id == "matmul/64x512x256/w8a16/dense/fwd"
    assert roles["qkv"].reference_id == "matmul/64x512x256/fp32/dense/fwd"
    assert roles["attention"].config_id == "attention/1x4x64x64x64x2/bf16/causal/auto/fwd"   # schemes: bf16 attention
    assert roles["attention"].reference_id == "attention/1x4x64x64x64x2/fp32/causal/math/fwd"
    assert roles["mlp_up"].count == 4 and roles["lm_head"].count == 1
    back = ModelPlan.from_json(plans[0].to_json())
    assert back.parts == plans[0].parts and back.model == plans[0].model


def test_sparsity_applies_to_the_weight_matmuls_only():
    specs, plans = expand_model_group({"preset": "tiny", "sparsity": ["unstructured:0.1"]})
    ids = [s.config_id for s in specs]
    assert "matmul/64x688x256/fp32/unstructured:0.1/fwd" in ids
    assert "attention/1x4x64x64x64x2/fp32/causal/auto/fwd" in ids and plans[0].sparsity == "unstructured:0.1"


def test_a_suite_with_models_runs_each_kernel_once_and_records_the_plans():
    suite = parse_suite('[[model]]\npreset = "tiny"\nprecisions = ["fp32", "bf16"]\n'
                        '[[model]]\npreset = "tiny"\nname = "tiny-b2"\nbatch = 2\nprecisions = ["bf16"]\n')
    ids = [s.config_id for s in suite.specs]
    assert len(ids) == len(set(ids))
    assert [p.key for p in suite.models] == [("tiny", "fp32", "dense", "fwd"), ("tiny", "bf16", "dense", "fwd"),
                                            ("tiny-b2", "bf16", "dense", "fwd")]
    assert len(suite.resolved()["models"]) == 3
    tags = model_tags(suite.models)
    assert tags["matmul/64x512x256/fp32/dense/fwd"] == "tiny"
    assert tags["matmul/128x512x256/fp32/dense/fwd"] == "tiny-b2"        # the reference of tiny-b2's bf16 qkv


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
    ('preset = "tiny"\nlayers = 3', "unknown key(s) layers"),
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
