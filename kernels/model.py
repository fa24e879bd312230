"""Decoder-only transformer shapes (no weights) and the kernels one training or inference step runs.

One layer is QKV projection, causal attention with grouped KV heads, output projection and the MLP (up, gate
when gated, down); the LM head follows the last layer. The layer repeats n_layers times, so it is measured
once and counted n_layers times. Tokens per step = batch x seq_len; every matmul is [tokens, out, in].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from hwprof.kernels import flops

SHAPE_KEYS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "vocab", "seq_len", "batch")


@dataclass(frozen=True)
class ModelShape:
    name: str
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab: int
    seq_len: int
    batch: int = 1
    gated_mlp: bool = True

    def __post_init__(self):
        for key in SHAPE_KEYS:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"model {self.name!r}: {key} must be a positive integer (got {v!r})")
        if self.d_model % self.n_heads:
            raise ValueError(f"model {self.name!r}: n_heads {self.n_heads} does not divide d_model {self.d_model}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"model {self.name!r}: n_kv_heads {self.n_kv_heads} does not divide n_heads {self.n_heads}")
        if not isinstance(self.gated_mlp, bool):
            raise ValueError(f"model {self.name!r}: gated_mlp must be true or false (got {self.gated_mlp!r})")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len

    def to_json(self) -> dict:
        return asdict(self)


# Shapes as published (configs of the released checkpoints); seq_len and batch are what one measured step
# holds, chosen so a CPU can measure the step (override them in the suite).
PRESETS: dict[str, ModelShape] = {
    m.name: m for m in [
        # a model that measures in seconds on a 2-core CPU
        ModelShape("tiny", d_model=256, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=688, vocab=4096, seq_len=64),
        # GPT-2 small (Radford et al. 2019; Hugging Face gpt2 config): tied embeddings, 4x GELU MLP
        ModelShape("gpt2-small", d_model=768, n_layers=12, n_heads=12, n_kv_heads=12, d_ff=3072, vocab=50257,
                   seq_len=256, gated_mlp=False),
        # Llama 3 8B (Meta, 2024; config.json): GQA with 8 KV heads, SwiGLU MLP
        ModelShape("llama3-8b", d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_ff=14336, vocab=128256,
                   seq_len=128),
        # Llama 3 70B (Meta, 2024; config.json), dense
        ModelShape("llama3-70b", d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8, d_ff=28672, vocab=128256,
                   seq_len=64),
    ]
}


@dataclass(frozen=True)
class Component:
    role: str                  # qkv | attention | out_proj | mlp_up | mlp_gate | mlp_down | lm_head
    kind: str                  # matmul | attention
    shape: tuple[int, ...]     # MatmulSpec [M, N, K] or AttentionSpec [B, H, Sq, Sk, D, H_kv]
    count: int                 # how many times one step runs it (n_layers for a layer's kernels)
    weight: bool = True        # a weight matmul (sparsity and quantization schemes apply); attention is not


def components(m: ModelShape) -> list[Component]:
    """The kernels of one step, in execution order, with how often each runs."""
    t, d, L = m.tokens, m.d_model, m.n_layers
    qkv_out = (m.n_heads + 2 * m.n_kv_heads) * m.head_dim
    out = [
        Component("qkv", "matmul", (t, qkv_out, d), L),
        Component("attention", "attention", (m.batch, m.n_heads, m.seq_len, m.seq_len, m.head_dim, m.n_kv_heads),
                  L, weight=False),
        Component("out_proj", "matmul", (t, d, d), L),
        Component("mlp_up", "matmul", (t, m.d_ff, d), L),
    ]
    if m.gated_mlp:
        out.append(Component("mlp_gate", "matmul", (t, m.d_ff, d), L))
    out += [Component("mlp_down", "matmul", (t, d, m.d_ff), L),
            Component("lm_head", "matmul", (t, m.vocab, d), 1)]
    return out


def non_embedding_params(m: ModelShape) -> int:
    """N of the scaling laws: the layers' weight matrices (norms and biases are negligible and left out);
    neither the embedding nor the LM head."""
    qkv = m.d_model * (m.n_heads + 2 * m.n_kv_heads) * m.head_dim
    mlp = (3 if m.gated_mlp else 2) * m.d_model * m.d_ff
    return m.n_layers * (qkv + m.d_model * m.d_model + mlp)


def standard_flops_per_token(m: ModelShape, pass_: str = "fwd") -> int:
    """Kaplan et al. (2020), table 1: 2N + 2 n_layers n_ctx d_attn per token forward, plus the de-embedding
    (LM head) 2 d_model vocab; training is 3x the forward. Kaplan's attention term is the QK^T logits over the
    full context only; hwprof's logical count is the dense reference's, which also computes the weighted sum
    of values over the full context, so its attention term is exactly twice Kaplan's (and 3.5x, not 3x, in
    training: flops.with_pass)."""
    fwd = 2 * non_embedding_params(m) + 2 * m.n_layers * m.seq_len * m.d_model + 2 * m.d_model * m.vocab
    return fwd if pass_ == "fwd" else 3 * fwd


def logical_flops_per_step(m: ModelShape, pass_: str = "fwd") -> int:
    """The step's logical FLOPs from its components, with hwprof's conventions (flops.py)."""
    total = 0
    for c in components(m):
        if c.kind == "matmul":
            total += c.count * flops.with_pass(flops.matmul_flops(*c.shape), pass_, "matmul")
        else:
            b, h, sq, sk, dh, _ = c.shape          # logical: every (q, k) pair, as the dense reference computes
            total += c.count * flops.with_pass(flops.attention_fwd_flops(b, h, sq, sk, dh), pass_, "attention")
    return total


def from_group(group: dict) -> ModelShape:
    """A ModelShape from a suite's [[model]] keys: a preset, overridden by any dimension given."""
    preset = group.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown model preset {preset!r} (presets: {', '.join(PRESETS)})")
        base = PRESETS[preset]
        fields = {k: group[k] for k in (*SHAPE_KEYS, "gated_mlp") if k in group}
        return replace(base, name=group.get("name", base.name), **fields)
    missing = [k for k in ("name", *SHAPE_KEYS) if k not in group and k != "batch"]
    if missing:
        raise ValueError(f"model {group.get('name', '?')!r}: missing {', '.join(missing)} (or give a preset)")
    return ModelShape(**{k: group[k] for k in ("name", *SHAPE_KEYS, "gated_mlp") if k in group})


def attention_precision(precision: str) -> str:
    """Attention runs in the step's precision where attention has it; tf32 steps use fp32 attention (tf32 is
    a matmul mode), integer, fp8 and quantization-scheme steps bf16 (schemes quantize the linear layers)."""
    return {"fp64": "fp64", "fp32": "fp32", "tf32": "fp32", "fp16": "fp16"}.get(precision, "bf16")
