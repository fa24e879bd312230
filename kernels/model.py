"""Decoder-only transformer shapes (no weights) and the kernels one step runs (pure).

A step is prefill (batch x seq_len tokens at once, causal attention) or decode (one new token per sequence,
attending to a KV cache of `context` earlier tokens). Its kernels (`components`) are what kernels.decoder
runs, in its order: the linear layers ([tokens, out, in], as torch's F.linear, or transformers' Conv1D for
GPT-2), attention, and the ops between them (kernels.ops), each with how often the step runs it. `matmul_parts`
is the older, matmul-only view of a step, kept for fwd+bwd (training) groups, which are not measured whole.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from hwprof.kernels import flops

SHAPE_KEYS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "vocab", "seq_len", "batch")
FAMILIES = ("llama", "gpt2")
PHASES = ("prefill", "decode")


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
    family: str = ""                   # llama (RMSNorm, rotary, SwiGLU) | gpt2 (LayerNorm, positions, GELU)
    context: int = 0                   # decode: earlier tokens in the KV cache (0: seq_len)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"model name must be a non-empty string (got {self.name!r})")
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
        if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 0:
            raise ValueError(f"model {self.name!r}: context must be a non-negative integer (got {self.context!r})")
        if not self.family:
            object.__setattr__(self, "family", "llama" if self.gated_mlp else "gpt2")
        if self.family not in FAMILIES:
            raise ValueError(f"model {self.name!r}: family must be one of {', '.join(FAMILIES)} (got {self.family!r})")
        if (self.family == "llama") != self.gated_mlp:
            raise ValueError(f"model {self.name!r}: the {self.family} family has "
                             f"{'a gated' if self.family == 'llama' else 'an ungated'} MLP (gated_mlp = "
                             f"{'true' if self.family == 'llama' else 'false'})")
        if self.head_dim % 2:
            raise ValueError(f"model {self.name!r}: head_dim {self.head_dim} must be even (rotary pairs channels)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len

    @property
    def kv_context(self) -> int:
        """The KV cache a decode step attends to (earlier tokens)."""
        return self.context or self.seq_len

    @property
    def max_positions(self) -> int:
        """GPT-2's learned position table: its 1024, or more if a step needs them."""
        return max(1024, self.seq_len + self.kv_context + 1)

    def to_json(self) -> dict:
        return asdict(self)


# Shapes as published (configs of the released checkpoints); seq_len and batch are what one measured step
# holds, chosen so a CPU can measure the step (override them in the suite).
PRESETS: dict[str, ModelShape] = {
    m.name: m for m in [
        # a model that measures in seconds on a 2-core CPU
        ModelShape("tiny", d_model=256, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=688, vocab=4096, seq_len=64),
        # a Llama-style model of d_model 768 (GQA 12/4, SwiGLU) whose decode step streams ~250 MB of fp32
        # weights: large enough that decode is memory-bound, small enough for a CPU's quick suite
        ModelShape("llama-small", d_model=768, n_layers=6, n_heads=12, n_kv_heads=4, d_ff=2048, vocab=32000,
                   seq_len=128),
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
    role: str                  # what it is in the step: q_proj, attention, mlp_down, rmsnorm, lm_head, ...
    kind: str                  # linear | conv1d | matmul | attention | op
    shape: tuple[int, ...]     # [T, out, in] for linear/conv1d/matmul; AttentionSpec's; OpSpec's for an op
    count: int                 # how many times one step runs it (n_layers, or the depth measured, for a layer's)
    weight: bool = True        # a weight matmul (sparsity and quantization schemes apply to it)
    op: str = ""               # kind op: which (kernels.ops)
    mask: str = "causal"       # kind attention


def components(m: ModelShape, phase: str = "prefill", depth: int | None = None) -> list[Component]:
    """The kernels of one prefill or decode step, in the order kernels.decoder runs them, with how often each
    runs (a layer's `depth` times: n_layers unless a shallower step is measured)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r} (use prefill or decode)")
    L = depth or m.n_layers
    d, ff, hd, b = m.d_model, m.d_ff, m.head_dim, m.batch
    s = m.seq_len if phase == "prefill" else 1
    t = b * s
    ctx = m.kv_context if phase == "decode" else 0
    kv = m.n_kv_heads
    attn = Component("attention", "attention", (b, m.n_heads, s, ctx + s, hd, kv) if kv != m.n_heads
                     else (b, m.n_heads, s, ctx + s, hd), L, weight=False, mask="causal" if phase == "prefill" else "none")
    layer: list[Component] = []
    norm = "layernorm" if m.family == "gpt2" else "rmsnorm"
    op = lambda role, name, shape, count=L: Component(role, "op", shape, count, False, name)   # noqa: E731
    layer.append(op(norm, norm, (t, d), 2 * L))                   # before attention and before the MLP
    if m.family == "gpt2":
        layer.append(Component("qkv", "conv1d", (t, 3 * d, d), L))
    else:
        layer += [Component("q_proj", "linear", (t, m.n_heads * hd, d), L),
                  Component("k_proj", "linear", (t, kv * hd, d), L),
                  Component("v_proj", "linear", (t, kv * hd, d), L),
                  op("rotary", "rotary", (b, m.n_heads, s, hd, kv))]
    if phase == "decode":
        layer.append(op("kv_append", "kv_append", (b, kv, ctx, hd), 2 * L))
    layer += [attn, op("merge_heads", "merge_heads", (b, m.n_heads, s, hd)),
              Component("out_proj", "conv1d" if m.family == "gpt2" else "linear", (t, d, m.n_heads * hd), L),
              op("residual", "residual", (t, d), 2 * L)]
    if m.family == "gpt2":
        layer += [Component("mlp_up", "conv1d", (t, ff, d), L), op("gelu", "gelu", (t, ff)),
                  Component("mlp_down", "conv1d", (t, d, ff), L)]
    else:
        layer += [Component("mlp_gate", "linear", (t, ff, d), L), Component("mlp_up", "linear", (t, ff, d), L),
                  op("silu_gate", "silu_gate", (t, ff)), Component("mlp_down", "linear", (t, d, ff), L)]
    head = [op("embedding", "embedding", (t, d, m.vocab), 1)]
    if m.family == "llama":
        head.append(op("rotary_tables", "rotary_tables", (s, hd), 1))
    if m.family == "gpt2":
        head += [op("position_embedding", "embedding", (t, d, m.max_positions), 1), op("positions_add", "residual", (t, d), 1)]
    tail = [op("final_norm", norm, (t, d), 1), Component("lm_head", "linear", (t, m.vocab, d), 1)]
    return head + layer + tail


def matmul_parts(m: ModelShape) -> list[Component]:
    """The matmul-only view of a step (kernel-level [tokens, out, in] matmuls and causal attention), kept for
    fwd+bwd (training) groups, whose steps are not measured whole."""
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


def standard_flops_per_token(m: ModelShape, pass_: str = "fwd", n_ctx: int | None = None) -> int:
    """Kaplan et al. (2020), table 1: 2N + 2 n_layers n_ctx d_attn per token forward, plus the de-embedding
    (LM head) 2 d_model vocab; training is 3x the forward. Kaplan's attention term is the QK^T logits over the
    full context only; hwprof's logical count is the dense reference's, which also computes the weighted sum
    of values over the full context, so its attention term is exactly twice Kaplan's (and 3.5x, not 3x, in
    training: flops.with_pass)."""
    n_ctx = m.seq_len if n_ctx is None else n_ctx          # a decode token attends to its cache and itself
    fwd = 2 * non_embedding_params(m) + 2 * m.n_layers * n_ctx * m.d_model + 2 * m.d_model * m.vocab
    return fwd if pass_ == "fwd" else 3 * fwd


def logical_flops_per_step(m: ModelShape, pass_: str = "fwd") -> int:
    """The step's logical FLOPs from its components, with hwprof's conventions (flops.py)."""
    total = 0
    for c in matmul_parts(m):
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
        fields = {k: group[k] for k in (*SHAPE_KEYS, "gated_mlp", "family", "context") if k in group}
        if "gated_mlp" in fields and "family" not in fields:
            fields["family"] = ""                                   # follows gated_mlp
        return replace(base, name=group.get("name", base.name), **fields)
    missing = [k for k in ("name", *SHAPE_KEYS) if k not in group and k != "batch"]
    if missing:
        raise ValueError(f"model {group.get('name', '?')!r}: missing {', '.join(missing)} (or give a preset)")
    fields = {k: group[k] for k in ("name", *SHAPE_KEYS, "gated_mlp", "family", "context") if k in group}
    if "family" in fields and "gated_mlp" not in fields:
        fields["gated_mlp"] = fields["family"] == "llama"
    return ModelShape(**fields)


def attention_precision(precision: str) -> str:
    """Attention runs in the step's precision where attention has it; tf32 steps use fp32 attention (tf32 is
    a matmul mode), integer, fp8 and quantization-scheme steps bf16 (schemes quantize the linear layers)."""
    return {"fp64": "fp64", "fp32": "fp32", "tf32": "fp32", "fp16": "fp16"}.get(precision, "bf16")
