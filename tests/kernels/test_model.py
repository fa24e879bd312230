"""Transformer shapes: published parameter counts, the step's kernels, and FLOPs against Kaplan's estimate."""
import pytest

from hwprof.kernels.model import (PRESETS, ModelShape, attention_precision, matmul_parts, from_group,
                                  logical_flops_per_step, non_embedding_params, standard_flops_per_token)
from hwprof.kernels.spec import AttentionSpec, MatmulSpec


@pytest.mark.parametrize("name,non_embedding,total", [
    ("llama3-8b", 6.98e9, 8.03e9),        # Meta's model card: 8.03B parameters (untied 128256 x 4096 embedding and head)
    ("llama3-70b", 68.45e9, 70.55e9),     # 70.6B
])
def test_published_parameter_counts(name, non_embedding, total):
    m = PRESETS[name]
    n = non_embedding_params(m)
    assert n == pytest.approx(non_embedding, rel=2e-3)
    assert n + 2 * m.vocab * m.d_model == pytest.approx(total, rel=2e-3)


def test_gpt2_small_is_85m_without_embeddings():
    m = PRESETS["gpt2-small"]
    assert non_embedding_params(m) == 12 * (4 * 768 * 768 + 2 * 768 * 3072) == 84_934_656
    assert [c.role for c in matmul_parts(m)] == ["qkv", "attention", "out_proj", "mlp_up", "mlp_down", "lm_head"]


def test_the_step_of_a_grouped_query_model():
    m = ModelShape("x", d_model=512, n_layers=3, n_heads=8, n_kv_heads=2, d_ff=1024, vocab=1000, seq_len=16, batch=2)
    parts = {c.role: c for c in matmul_parts(m)}
    assert parts["qkv"].shape == (32, (8 + 2 * 2) * 64, 512) and parts["qkv"].count == 3
    assert parts["attention"].shape == (2, 8, 16, 16, 64, 2) and not parts["attention"].weight
    assert parts["mlp_gate"].shape == parts["mlp_up"].shape == (32, 1024, 512)
    assert parts["mlp_down"].shape == (32, 512, 1024)
    assert parts["lm_head"].shape == (32, 1000, 512) and parts["lm_head"].count == 1


@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_the_step_count_is_the_sum_of_its_configurations_logical_flops(pass_):
    m = PRESETS["tiny"]
    total = 0
    for c in matmul_parts(m):
        spec = (MatmulSpec(c.shape, "fp32", pass_=pass_) if c.kind == "matmul"
                else AttentionSpec(c.shape, "fp32", "causal", "auto", pass_))
        total += c.count * spec.logical_flops
    assert logical_flops_per_step(m, pass_) == total


@pytest.mark.parametrize("name", list(PRESETS))
def test_logical_flops_per_token_against_kaplans_estimate(name):
    m = PRESETS[name]
    attention_kaplan = 2 * m.n_layers * m.seq_len * m.d_model
    fwd = logical_flops_per_step(m, "fwd")
    # exactly Kaplan's 2N + attention + LM head, with the attention term doubled (QK^T and PV, not QK^T alone)
    assert fwd == m.tokens * (standard_flops_per_token(m) + attention_kaplan)
    n = non_embedding_params(m)
    head = 2 * m.d_model * m.vocab
    assert fwd / m.tokens == pytest.approx(2 * n + head, rel=0.05 if m.seq_len < m.d_model else 0.5)
    train = logical_flops_per_step(m, "fwd+bwd") / m.tokens
    assert train == 3 * (2 * n + head) + 3.5 * 2 * attention_kaplan         # 6N, and 3.5x the attention forward


def test_the_standard_estimate_is_2n_forward_and_6n_training_plus_its_terms():
    m = PRESETS["llama3-8b"]
    n = non_embedding_params(m)
    assert standard_flops_per_token(m) == 2 * n + 2 * 32 * 128 * 4096 + 2 * 4096 * 128256
    assert standard_flops_per_token(m, "fwd+bwd") == 3 * standard_flops_per_token(m)


@pytest.mark.parametrize("group,words", [
    ({"name": "m", "d_model": 0, "n_layers": 1, "n_heads": 1, "n_kv_heads": 1, "d_ff": 4, "vocab": 4, "seq_len": 4},
     "d_model must be a positive integer"),
    ({"name": "m", "d_model": 100, "n_layers": 1, "n_heads": 3, "n_kv_heads": 1, "d_ff": 4, "vocab": 4, "seq_len": 4},
     "n_heads 3 does not divide d_model 100"),
    ({"name": "m", "d_model": 96, "n_layers": 1, "n_heads": 6, "n_kv_heads": 4, "d_ff": 4, "vocab": 4, "seq_len": 4},
     "n_kv_heads 4 does not divide n_heads 6"),
    ({"name": "m", "d_model": 64, "n_heads": 4, "n_kv_heads": 4, "d_ff": 4, "vocab": 4, "seq_len": 4},
     "missing n_layers"),
    ({"preset": "llama9"}, "unknown model preset 'llama9'"),
    ({"preset": "tiny", "seq_len": -1}, "seq_len must be a positive integer"),
    ({"preset": "tiny", "gated_mlp": "yes"}, "gated_mlp must be true or false"),
    ({"preset": "tiny", "batch": 2.5}, "batch must be a positive integer"),
])
def test_bad_model_groups_say_why_in_one_line(group, words):
    with pytest.raises(ValueError, match=words) as e:
        from_group(group)
    assert "\n" not in str(e.value)


def test_a_preset_overridden_keeps_its_other_dimensions():
    m = from_group({"preset": "llama3-8b", "seq_len": 512, "batch": 2, "name": "mine"})
    assert (m.name, m.seq_len, m.batch, m.d_model, m.n_kv_heads) == ("mine", 512, 2, 4096, 8)


def test_attention_runs_in_the_steps_precision_where_it_can():
    assert [attention_precision(p) for p in ("fp32", "tf32", "bf16", "fp16", "fp64", "int8", "w8a16")] == \
        ["fp32", "fp32", "bf16", "fp16", "fp64", "bf16", "bf16"]
