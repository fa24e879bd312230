"""A decoder-only transformer in plain torch, with seeded random weights (nothing is downloaded), for measuring
whole steps: prefill (the sequence at once) and decode (one new token per sequence against a KV cache).

Two families, written as Hugging Face transformers writes them so that a step here costs what the user's
model costs (hwprof validate --model checks it against transformers itself):
- llama: RMSNorm (in fp32, cast back), separate q/k/v projections, rotary (`rotate_half`), grouped KV heads
  (SDPA's enable_gqa), SwiGLU MLP, no biases, an untied LM head;
- gpt2: LayerNorm, learned positions, one fused QKV projection with biases (`addmm` on an [in, out] weight, as
  transformers' Conv1D), the tanh GELU, and an LM head tied to the embedding.
Every op between the matmuls comes from kernels.ops, the same functions the step's op cases measure.
The decode cache is extended the way transformers' DynamicCache does it (a concatenation every token). The
extended cache is the step's output as much as its logits, so each layer holds its extension until the next
step's replaces it, as generation does (there, a layer's new keys replace its old ones): a layer's
concatenation is written while its last one is still held, and frees it. Dropped within the step instead, a
layer's result would land in the block the layer before had just freed, hot in cache; dropped at its end, the
whole extension would be freed at once, handed back to the system and faulted in again next step. Every call
extends the same `context` tokens, so every call does the same work.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from hwprof.kernels.calls import Hollow, HollowMatmuls, HollowOps, Kernels
from hwprof.kernels.model import ModelShape


def _normal(gen: torch.Generator | None, *shape: int, device) -> torch.Tensor:
    if gen is None:                                   # a hollow step's weights: shapes only
        return torch.empty(*shape, device=device)
    return torch.randn(*shape, generator=gen, device=device) * 0.02


class _Linear(nn.Linear):
    """nn.Linear (x @ W^T, W [out, in]), so that torchao's quantize_ finds it; `conv1d` stores W as [in, out] and
    adds the bias with addmm, as transformers' GPT-2 Conv1D does (and, like that Conv1D, is not an nn.Linear
    to torchao: `quantizable` leaves it out, as quantize_ leaves transformers' GPT-2 layers)."""

    def __init__(self, k: Kernels, w_out_in: torch.Tensor, bias: torch.Tensor | None = None, conv1d: bool = False):
        nn.Module.__init__(self)
        self.out_features, self.in_features = w_out_in.shape
        self.conv1d, self.k = conv1d, k
        self.weight = nn.Parameter(w_out_in.t().contiguous() if conv1d else w_out_in, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1d:
            out = self.k.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
            return out.view(*x.shape[:-1], -1)
        return self.k.linear(x, self.weight, self.bias)


def quantizable(module: nn.Module, fqn: str = "") -> bool:
    """torchao's filter: the nn.Linear layers transformers would have (not GPT-2's Conv1D ones)."""
    return isinstance(module, nn.Linear) and not getattr(module, "conv1d", False)


class _Attention(nn.Module):
    def __init__(self, m: ModelShape, gen: torch.Generator, device, k: Kernels):
        super().__init__()
        d, hd = m.d_model, m.head_dim
        self.m, self.heads, self.kv_heads, self.hd, self.kern = m, m.n_heads, m.n_kv_heads, hd, k
        if m.family == "gpt2":
            self.qkv = _Linear(k, _normal(gen, 3 * d, d, device=device), torch.zeros(3 * d, device=device), conv1d=True)
            self.o = _Linear(k, _normal(gen, d, d, device=device), torch.zeros(d, device=device), conv1d=True)
        else:
            self.q = _Linear(k, _normal(gen, m.n_heads * hd, d, device=device))
            self.k = _Linear(k, _normal(gen, m.n_kv_heads * hd, d, device=device))
            self.v = _Linear(k, _normal(gen, m.n_kv_heads * hd, d, device=device))
            self.o = _Linear(k, _normal(gen, d, m.n_heads * hd, device=device))

    def forward(self, x, rope, kv):
        b, s, _ = x.shape
        if self.m.family == "gpt2":
            q, k, v = self.qkv(x).split(self.m.d_model, dim=2)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q = q.view(b, s, -1, self.hd).transpose(1, 2)
        k = k.view(b, s, -1, self.hd).transpose(1, 2)
        v = v.view(b, s, -1, self.hd).transpose(1, 2)
        kern = self.kern
        if rope is not None:
            q, k = kern.rotary(q, k, *rope)
        if kv is not None:
            k, v = kern.kv_append(kv[0], k), kern.kv_append(kv[1], v)
            self.extended = k, v               # frees the last step's (see the module docstring)
        gqa = {"enable_gqa": True} if self.kv_heads != self.heads else {}
        a = kern.sdpa(q, k, v, is_causal=s > 1 and kv is None, **gqa)
        return self.o(kern.merge_heads(a))


class _Block(nn.Module):
    def __init__(self, m: ModelShape, gen: torch.Generator, device, k: Kernels):
        super().__init__()
        d, ff = m.d_model, m.d_ff
        self.m, self.k = m, k
        self.attn = _Attention(m, gen, device, k)
        ones = lambda: torch.ones(d, device=device)                 # noqa: E731
        self.norm1, self.norm2 = nn.Parameter(ones(), requires_grad=False), nn.Parameter(ones(), requires_grad=False)
        if m.family == "gpt2":
            self.norm1_b = nn.Parameter(torch.zeros(d, device=device), requires_grad=False)
            self.norm2_b = nn.Parameter(torch.zeros(d, device=device), requires_grad=False)
            self.up = _Linear(k, _normal(gen, ff, d, device=device), torch.zeros(ff, device=device), conv1d=True)
            self.down = _Linear(k, _normal(gen, d, ff, device=device), torch.zeros(d, device=device), conv1d=True)
        else:
            self.gate = _Linear(k, _normal(gen, ff, d, device=device))
            self.up = _Linear(k, _normal(gen, ff, d, device=device))
            self.down = _Linear(k, _normal(gen, d, ff, device=device))

    def _norm(self, x, which: int):
        if self.m.family == "gpt2":
            return self.k.layer_norm(x, *((self.norm1, self.norm1_b) if which == 1 else (self.norm2, self.norm2_b)))
        return self.k.rms_norm(x, self.norm1 if which == 1 else self.norm2)

    def forward(self, h, rope, kv):
        h = self.k.residual(h, self.attn(self._norm(h, 1), rope, kv))
        x = self._norm(h, 2)
        if self.m.family == "gpt2":
            x = self.down(self.k.gelu(self.up(x)))
        else:
            x = self.down(self.k.silu_gate(self.gate(x), self.up(x)))
        return self.k.residual(h, x)


class Decoder(nn.Module):
    """`depth` of the model's layers (all of them by default), embedding, final norm and LM head."""

    def __init__(self, m: ModelShape, seed: int = 0, device=torch.device("cpu"), depth: int | None = None,
                 hollow: torch.dtype | None = None, replicas: int = 1, live_ops: bool = False,
                 live_matmuls: bool = False, writes: str = ""):
        """`hollow` (the activations' dtype): every kernel a stub (Hollow), the weights on the meta device;
        with `live_ops`, the ops between the matmuls run (HollowMatmuls), and the weights they read (norms,
        embedding, positions) are real; with `live_matmuls`, the matmuls and attention run on real weights and
        the ops are stubs (HollowOps); `writes` ("mm" or "ops"), that kind's stubs write their outputs
        (kernels.calls: a live hollow step's baseline). `replicas`: that many copies of the `depth` layers, each call using
        the next, so that a shallow step reads its layers' weights from memory as the whole model's step does
        (kernels.linear's reason)."""
        super().__init__()
        if live_ops and live_matmuls:
            raise ValueError("a hollow step runs its ops or its matmuls live, not both (that is the step)")
        real = device
        if hollow is not None and not live_matmuls:
            device = torch.device("meta")
        gen = torch.Generator(device=device).manual_seed(seed) if device.type != "meta" else None
        self.m, self.depth = m, depth or m.n_layers
        stubs = HollowMatmuls if live_ops else HollowOps if live_matmuls else Hollow
        self.k = k = stubs(hollow, [writes] if writes else ()) if hollow is not None else Kernels()
        self.embed = nn.Parameter(_normal(gen, m.vocab, m.d_model, device=device), requires_grad=False)
        if m.family == "gpt2":
            self.positions = nn.Parameter(_normal(gen, m.max_positions, m.d_model, device=device), requires_grad=False)
            self.final_b = nn.Parameter(torch.zeros(m.d_model, device=device), requires_grad=False)
        self.layers = nn.ModuleList([_Block(m, gen, device, k) for _ in range(self.depth)])
        # registered, so that .to(dtype) and quantize_ reach every copy
        self.more = nn.ModuleList([nn.ModuleList([_Block(m, gen, device, k) for _ in range(self.depth)])
                                   for _ in range(replicas - 1)])
        self.replicas = [self.layers, *self.more]
        self._turn = 0
        self.final = nn.Parameter(torch.ones(m.d_model, device=device), requires_grad=False)
        self.lm_head = _Linear(k, self.embed if m.family == "gpt2" else _normal(gen, m.vocab, m.d_model, device=device))
        if hollow is not None and live_ops:
            self._materialise_op_weights(seed, real)

    def _materialise_op_weights(self, seed: int, device) -> None:
        """The weights the ops read, made real on `device` (the matmuls' stay on the meta device)."""
        gen = torch.Generator(device=device).manual_seed(seed)
        for module in self.modules():
            if isinstance(module, _Linear):
                continue
            for name, p in list(module._parameters.items()):
                if p is None or not p.is_meta:
                    continue
                if name in ("embed", "positions"):
                    value = torch.randn(*p.shape, generator=gen, device=device) * 0.02
                else:                                  # norm weights (ones) and biases (zeros)
                    value = (torch.zeros if name.endswith("_b") else torch.ones)(*p.shape, device=device)
                module._parameters[name] = nn.Parameter(value, requires_grad=False)

    def forward(self, ids: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """Logits for every position of `ids` [B, S]; with `cache` (per layer (keys, values) of the earlier
        tokens), the tokens follow them."""
        start = cache[0][0].shape[2] if cache else 0
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        k = self.k
        h = k.embedding(ids, self.embed)
        rope = None
        if self.m.family == "gpt2":
            h = k.residual(h, k.embedding(positions, self.positions))
        else:
            rope = k.rotary_tables(positions, self.m.head_dim, h.dtype)
        layers = self.replicas[self._turn % len(self.replicas)]
        self._turn += 1
        for i, layer in enumerate(layers):
            h = layer(h, rope, cache[i] if cache else None)
        h = k.layer_norm(h, self.final, self.final_b) if self.m.family == "gpt2" else k.rms_norm(h, self.final)
        return self.lm_head(h)


def random_cache(m: ModelShape, context: int, depth: int, dtype: torch.dtype, seed: int, device) -> list:
    """A KV cache of `context` earlier tokens per layer, [B, H_kv, context, head_dim] each (random values:
    decode's cost does not depend on them)."""
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    shape = (m.batch, m.n_kv_heads, context, m.head_dim)
    return [(torch.randn(*shape, generator=gen, device=device).to(dtype),
             torch.randn(*shape, generator=gen, device=device).to(dtype)) for _ in range(depth)]


def step_inputs(m: ModelShape, phase: str, seed: int, device) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed + 2)
    tokens = m.seq_len if phase == "prefill" else 1
    return torch.randint(0, m.vocab, (m.batch, tokens), generator=gen, device=device)


def weight_bytes(m: ModelShape, depth: int, element_bytes: int) -> int:
    """Bytes of a depth-`depth` decoder's parameters at this element size (for memory estimates)."""
    per_layer = (m.d_model * (m.n_heads + 2 * m.n_kv_heads) * m.head_dim + m.d_model * m.n_heads * m.head_dim
                 + (3 if m.family == "llama" else 2) * m.d_model * m.d_ff)
    head = 0 if m.family == "gpt2" else m.vocab * m.d_model
    positions = m.max_positions * m.d_model if m.family == "gpt2" else 0
    return element_bytes * (depth * per_layer + m.vocab * m.d_model + head + positions)


def prune_weights(model: nn.Module, sparsity) -> float:
    """Each layer's weight (not the LM head) pruned to the pattern and stored sparse (CSR, BSR) for F.linear;
    a Conv1D layer becomes an F.linear one on its [out, in] weight. Returns the density kept overall."""
    import warnings

    from hwprof.kernels.sparsity import prune
    kept = total = 0
    for name, mod in model.named_modules():
        if not isinstance(mod, _Linear) or name == "lm_head":
            continue
        w = mod.weight.detach()
        w = w.t() if mod.conv1d else w
        pruned, _, _ = prune(w.float(), sparsity)
        kept, total = kept + int((pruned != 0).sum()), total + pruned.numel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            stored = pruned.to(w.dtype).to_sparse_csr() if sparsity.pattern == "unstructured" else \
                pruned.to(w.dtype).to_sparse_bsr((sparsity.block, sparsity.block))
        del mod._parameters["weight"]
        mod.weight, mod.conv1d = stored, False
    return kept / total if total else 1.0
