"""Every kernel a step of kernels.decoder calls, in one table: the real ones (Kernels), or stubs that only hand
back an output of the right shape (Hollow: every kernel; HollowMatmuls: the matmuls and attention only;
HollowOps: the ops only), so that a hollow step measures the step's work between its kernels, with its ops
or its matmuls and attention as the step runs them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hwprof.kernels import ops


class Kernels:
    """Every kernel a step calls, in one place: the real ones, or (`Hollow`) stubs that only hand back an
    output of the right shape, so that a hollow step's time is the step's own work between kernels (module
    calls, views, splits, Python): the per-operator overhead a kernel measured alone does not carry."""
    linear = staticmethod(F.linear)
    addmm = staticmethod(torch.addmm)
    sdpa = staticmethod(F.scaled_dot_product_attention)
    embedding = staticmethod(F.embedding)
    rms_norm = staticmethod(ops.rms_norm)
    layer_norm = staticmethod(ops.layer_norm)
    silu_gate = staticmethod(ops.silu_gate)
    gelu = staticmethod(ops.gelu_tanh)
    rotary = staticmethod(ops.rotary)
    rotary_tables = staticmethod(ops.rotary_tables)
    residual = staticmethod(ops.residual)
    kv_append = staticmethod(ops.kv_append)
    merge_heads = staticmethod(ops.merge_heads)


class _Stubs:
    """An output of a stub: a tensor of its shape in the activations' dtype, allocated once."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        self._out: dict = {}
        self.dtype = dtype                  # the activations'

    def _empty(self, shape, like: torch.Tensor) -> torch.Tensor:
        key = (tuple(shape), like.device)
        if key not in self._out:
            self._out[key] = torch.zeros(*shape, dtype=self.dtype, device=like.device)
        return self._out[key]


class _MatmulStubs(_Stubs):
    def linear(self, x, w, b=None):
        return self._empty((*x.shape[:-1], w.shape[0]), x)

    def addmm(self, b, x, w):
        return self._empty((x.shape[0], w.shape[1]), x)

    def sdpa(self, q, k, v, **kw):
        return self._empty((*q.shape[:-1], v.shape[-1]), q)


class _OpStubs(_Stubs):
    """The ops between the matmuls as stubs, each handing back its input or a tensor of its output's shape."""

    def embedding(self, ids, table):
        return self._empty((*ids.shape, table.shape[1]), ids)

    def rms_norm(self, x, w, eps=ops.EPS):
        return x

    def layer_norm(self, x, w, b, eps=1e-5):
        return x

    def silu_gate(self, gate, up):
        return gate

    def gelu(self, x):
        return x

    def rotary(self, q, k, cos, sin):
        return q, k

    def rotary_tables(self, positions, head_dim, dtype, theta=500000.0):
        t = self._empty((1, positions.shape[0], head_dim), positions)
        return t, t

    def residual(self, x, y):
        return x

    def kv_append(self, cache, new):
        return self._empty((*cache.shape[:-2], cache.shape[-2] + new.shape[-2], cache.shape[-1]), cache)

    def merge_heads(self, a):
        b, h, s, d = a.shape
        return self._empty((b, s, h * d), a)


class HollowMatmuls(_MatmulStubs, Kernels):
    """Only the matmuls and attention are stubs; the ops between them run for real (Kernels'), in the step's
    order. An op timed alone, call after call, runs with its code and operands hot; in a step it follows other
    kernels and runs up to several times slower (a small one most). This step measures the ops as the step
    runs them (the weights they read are real; the matmuls' stay on the meta device)."""


class HollowOps(_OpStubs, Kernels):
    """Only the ops are stubs; the matmuls and attention run for real, on real weights, in the step's order.
    A matmul timed alone, call after call, keeps its kernel's code, its oneDNN primitive and (AMX) its tile
    configuration hot; in a step each follows kernels of other shapes (bf16 linear layers ran 1.3-1.7x their
    time alone). This step measures the matmuls and attention as the step runs them."""


class Hollow(_OpStubs, _MatmulStubs):
    """Kernels that compute nothing: every kernel a stub."""
