"""The work of a transformer step between its matmuls: norms, the activation and its gate product, rotary
embeddings, residual adds, the embedding gather, the key/value cache append and the head merge.

Each op is a function the decoder (kernels.decoder) calls and a case measured alone (`build_op`), so the step
and its kernels run the same code. They are written as Hugging Face transformers writes them (RMSNorm in fp32
and cast back, `rotate_half` rotary, the tanh GELU as its six elementwise ops), since a user's model is most
often that code, and in bf16 these do not speed up like the matmuls do.

FLOP convention: the scaling-law count leaves this work out, so its logical FLOPs are 0 (a step's logical
compute is its matmuls' and attention's, unchanged). Physical FLOPs count each arithmetic operation per
element once, a transcendental (exp, tanh, rsqrt) as one, and `PHYSICAL_PER_ELEMENT` lists them; bytes moved
are the operands read plus the result written, in storage dtype, which is what places an op on the memory roof.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hwprof.kernels.case import Case, max_rel_error, nbytes
from hwprof.kernels.precision import PRECISIONS

OPS = ("rmsnorm", "layernorm", "silu_gate", "gelu", "rotary", "rotary_tables", "residual", "embedding", "kv_append",
       "merge_heads")
# Arithmetic per element of the op's main tensor (see the module docstring):
#   rmsnorm: square, sum, scale by rsqrt, times weight (casts count no FLOPs); layernorm: mean, centre, square,
#   sum, normalise, scale, shift (+1 rounding up the two reductions); silu_gate: neg, exp, add, divide, times
#   up; gelu (tanh form): cube (2), scale, add, scale, tanh, add, two multiplies; rotary: two multiplies and an
#   add per element of q and k; rotary_tables (once a step, [S, head_dim]): the angle, its cosine and sine;
#   residual: one add; the gather, the cache append and the head merge only move data.
PHYSICAL_PER_ELEMENT = {"rmsnorm": 4, "layernorm": 8, "silu_gate": 5, "gelu": 9, "rotary": 3, "rotary_tables": 3,
                        "residual": 1, "embedding": 0, "kv_append": 0, "merge_heads": 0}
EPS = 1e-6


# ------------------------------------------------------------------------------ the ops, as the step calls them

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Llama's RMSNorm as transformers computes it: in fp32, cast back, times the weight."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def silu_gate(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's activation with its gate product: silu(gate) x up."""
    return F.silu(gate) * up


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's `gelu_new` as transformers writes it: six elementwise kernels, not one fused GELU."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotary_tables(positions: torch.Tensor, head_dim: int, dtype: torch.dtype, theta: float = 500000.0):
    """cos and sin [1, S, head_dim] for the positions, computed in fp32 as transformers' default RoPE does."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    freqs = positions[None, :, None].float() * inv[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """q and k [B, H, S, D] rotated by the positions' angles (cos and sin [1, S, D])."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def residual(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y


def kv_append(cache: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """A decode step's keys (or values): the cache with the new token's, as transformers' DynamicCache
    concatenates them (a copy of the whole cache every token)."""
    return torch.cat([cache, new], dim=-2)


def merge_heads(attn: torch.Tensor) -> torch.Tensor:
    """Attention's output [B, H, S, D] back to [B, S, H*D] for the output projection (a copy)."""
    b, h, s, d = attn.shape
    return attn.transpose(1, 2).reshape(b, s, h * d).contiguous()


# ------------------------------------------------------------------------------ measured alone

@dataclass(frozen=True)
class OpSpec:
    """One op at one shape: `shape` is [T, C] (tokens, channels) for the row-wise ops; [B, H, S, D, H_kv] for
    rotary; [T, C, vocab] for the embedding gather; [B, H_kv, S_cache, D] for the cache append."""
    op: str
    shape: tuple[int, ...]
    precision: str
    kernel: str = "op"
    pass_: str = "fwd"

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r} (ops: {', '.join(OPS)})")
        if any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"op {self.op} shape {list(self.shape)} must be positive")
        if self.precision not in ("fp64", "fp32", "fp16", "bf16"):
            raise ValueError(f"op precision {self.precision!r} must be fp64, fp32, fp16 or bf16")

    @property
    def config_id(self) -> str:
        return f"op/{self.op}/{'x'.join(map(str, self.shape))}/{self.precision}/fwd"

    @property
    def logical_flops(self) -> int:
        return 0

    @property
    def elements(self) -> int:
        """Elements of the op's main tensor (what PHYSICAL_PER_ELEMENT counts over)."""
        if self.op == "rotary":
            b, h, s, d, hkv = self.shape
            return b * (h + hkv) * s * d
        if self.op == "embedding":
            return self.shape[0] * self.shape[1]
        if self.op == "kv_append":
            b, hkv, s, d = self.shape
            return b * hkv * (s + 1) * d              # the keys (or the values), the new token's included
        return math.prod(self.shape)

    @property
    def physical_flops(self) -> int:
        return PHYSICAL_PER_ELEMENT[self.op] * self.elements

    sparsity_column = "dense"
    density = 1.0
    backend = "aten"

    def reference(self) -> "OpSpec":
        """The same op in fp32: what hef is measured against (kernels.spec.reference_of)."""
        return OpSpec(self.op, self.shape, "fp32")


def build_op(spec: OpSpec, device: torch.device, seed: int) -> Case:
    """The op on seeded normals of the step's shapes, with an fp64 computation of the same op as reference."""
    dtype = PRECISIONS[spec.precision].dtype
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device)
    if spec.op in ("rmsnorm", "layernorm", "residual", "silu_gate", "gelu"):
        t, c = spec.shape
        srcs = [randn(t, c)] + ([randn(c)] if spec.op in ("rmsnorm", "layernorm") else []) + \
            ([randn(c)] if spec.op == "layernorm" else []) + ([randn(t, c)] if spec.op in ("residual", "silu_gate") else [])
        fn = {"rmsnorm": rms_norm, "layernorm": layer_norm, "residual": residual, "silu_gate": silu_gate,
              "gelu": gelu_tanh}[spec.op]
    elif spec.op == "rotary":
        b, h, s, d, hkv = spec.shape
        cos, sin = rotary_tables(torch.arange(s, device=device), d, torch.float32)
        srcs, fn = [randn(b, h, s, d), randn(b, hkv, s, d), cos, sin], rotary
    elif spec.op == "rotary_tables":
        s_len, d = spec.shape
        positions = torch.arange(s_len, device=device)
        out_bytes = 2 * s_len * d * PRECISIONS[spec.precision].element_bytes
        return Case(spec, lambda: rotary_tables(positions, d, dtype), 0, spec.physical_flops, 1.0, "aten",
                    nbytes(positions) + out_bytes,
                    lambda out: max_rel_error(list(out), list(rotary_tables(positions, d, torch.float64))))
    elif spec.op == "embedding":
        t, c, vocab = spec.shape
        ids = torch.randint(0, vocab, (t,), generator=gen, device=device)
        table = randn(vocab, c)
        run_args = (ids, table.to(dtype))
        out_bytes = t * c * PRECISIONS[spec.precision].element_bytes
        return Case(spec, lambda: F.embedding(*run_args), 0, 0, 1.0, "aten",
                    nbytes(ids) + out_bytes * 2, lambda out: max_rel_error([out], [F.embedding(ids, table.double())]),
                    operands={"ids": ids, "table": run_args[1]})
    elif spec.op == "kv_append":
        b, hkv, s, d = spec.shape
        srcs, fn = [randn(b, hkv, s, d), randn(b, hkv, 1, d)], kv_append
    else:                                             # merge_heads: [T, C] = [B*S, H*D] given as B, H, S, D
        b, h, s, d = spec.shape
        srcs, fn = [randn(b, h, s, d)], merge_heads
    ops = [x.to(dtype) for x in srcs]
    out_elems = sum(o.numel() for o in _as_list(fn(*ops)))
    io = sum(nbytes(x) for x in ops) + out_elems * ops[0].element_size()
    refs = [x.double() for x in srcs]

    def error(out) -> float:
        return max_rel_error(_as_list(out), _as_list(fn(*refs)))
    return Case(spec, lambda: fn(*ops), 0, spec.physical_flops, 1.0, "aten", io, error,
                operands={f"x{i}": x for i, x in enumerate(ops)})


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]
