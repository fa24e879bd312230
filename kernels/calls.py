"""Every kernel a step of kernels.decoder calls, in one table: the real ones (Kernels), or stubs that only hand
back an output of the right shape (Hollow: every kernel; HollowMatmuls: the matmuls and attention only;
HollowOps: the ops only), so that a hollow step measures the step's work between its kernels, with its ops
or its matmuls and attention as the step runs them.

Where a kind runs live, the other kind's stubs hand back their output as its kernel leaves it: freshly
allocated and written (`writes`), so that a live kernel reads its input from memory a neighbour has just
written, on the threads that wrote it, and writes where the step would, not into a buffer only it touches.
Those writes are not the live kind's cost: each live hollow step is read against its baseline, the hollow
step whose stubs write the same (and whose live kind is stubs too).
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


WRITERS = ("mm", "ops")           # the stub kinds that can hand back their outputs written: matmuls, ops


class _Stubs:
    """An output of a stub: a tensor of its shape in the activations' dtype, allocated once; for a kind in
    `writes` ("mm": the matmuls' and attention's stubs, "ops": the ops'), a fresh copy of it each call."""
    writes: frozenset = frozenset()     # a class's own: the kinds its stubs always write

    def __init__(self, dtype: torch.dtype = torch.float32, writes=()):
        unknown = set(writes) - set(WRITERS)
        if unknown:
            raise ValueError(f"unknown stub kinds {sorted(unknown)} (use {', '.join(WRITERS)})")
        self._out: dict = {}
        self.dtype = dtype                  # the activations'
        self.writes = type(self).writes | frozenset(writes)

    def _empty(self, shape, like: torch.Tensor) -> torch.Tensor:
        key = (tuple(shape), like.device)
        if key not in self._out:
            self._out[key] = torch.zeros(*shape, dtype=self.dtype, device=like.device)
        return self._out[key]

    def _hand_back(self, kind: str, out):
        """`out` (a tensor or a tuple of them), or, where this kind's stubs write, a fresh copy of it: a new
        allocation, written by as many threads as torch gives a copy of its size (an elementwise kernel's)."""
        if kind not in self.writes:
            return out
        if isinstance(out, tuple):
            return tuple(torch.empty_like(t).copy_(t) for t in out)
        return torch.empty_like(out).copy_(out)


class _MatmulStubs(_Stubs):
    def linear(self, x, w, b=None):
        return self._hand_back("mm", self._empty((*x.shape[:-1], w.shape[0]), x))

    def addmm(self, b, x, w):
        return self._hand_back("mm", self._empty((x.shape[0], w.shape[1]), x))

    def sdpa(self, q, k, v, **kw):
        return self._hand_back("mm", self._empty((*q.shape[:-1], v.shape[-1]), q))


class _OpStubs(_Stubs):
    """The ops between the matmuls as stubs, each handing back its input or a tensor of its output's shape."""

    def embedding(self, ids, table):
        return self._hand_back("ops", self._empty((*ids.shape, table.shape[1]), ids))

    def rms_norm(self, x, w, eps=ops.EPS):
        return self._hand_back("ops", x)

    def layer_norm(self, x, w, b, eps=1e-5):
        return self._hand_back("ops", x)

    def silu_gate(self, gate, up):
        return self._hand_back("ops", gate)

    def gelu(self, x):
        return self._hand_back("ops", x)

    def rotary(self, q, k, cos, sin):
        return self._hand_back("ops", (q, k))

    def rotary_tables(self, positions, head_dim, dtype, theta=500000.0):
        t = self._hand_back("ops", self._empty((1, positions.shape[0], head_dim), positions))
        return t, t

    def residual(self, x, y):
        return self._hand_back("ops", x)

    def kv_append(self, cache, new):
        return self._hand_back("ops", self._empty((*cache.shape[:-2], cache.shape[-2] + new.shape[-2], cache.shape[-1]), cache))

    def merge_heads(self, a):
        b, h, s, d = a.shape
        return self._hand_back("ops", self._empty((b, s, h * d), a))


class HollowMatmuls(_MatmulStubs, Kernels):
    """Only the matmuls and attention are stubs; the ops between them run for real (Kernels'), in the step's
    order. An op timed alone, call after call, runs with its code and operands hot; in a step it follows other
    kernels and runs up to several times slower (a small one most). This step measures the ops as the step
    runs them (the weights they read are real; the matmuls' stay on the meta device). The matmul stubs write
    their outputs, as the matmuls would, for the ops to read."""
    writes = frozenset({"mm"})


class HollowOps(_OpStubs, Kernels):
    """Only the ops are stubs; the matmuls and attention run for real, on real weights, in the step's order.
    A matmul timed alone, call after call, keeps its kernel's code, its oneDNN primitive and (AMX) its tile
    configuration hot; in a step each follows kernels of other shapes (bf16 linear layers ran 1.3-1.7x their
    time alone). This step measures the matmuls and attention as the step runs them. The op stubs write their
    outputs, as the ops would, for the matmuls to read."""
    writes = frozenset({"ops"})


class Hollow(_OpStubs, _MatmulStubs):
    """Kernels that compute nothing: every kernel a stub (those of the kinds in `writes` writing their outputs:
    a live hollow step's baseline)."""
