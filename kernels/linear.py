"""A model's linear layers as kernels: tokens [T, in] times a weight, as the step computes them (F.linear
against an [out, in] weight, or GPT-2's Conv1D: addmm with a bias against an [in, out] weight).

In a step every layer's weights come from memory: each is used once per step, and the layers between two
uses of one evict it. A layer timed alone, call after call, would find its weight in cache and run several
times faster at decode, where the weight is the whole of the work. So the case cycles through enough copies of
the weight to exceed the device's last-level cache several times over (kernels.caches), each call using the
next, and its activations stay warm, as they are in the step.
"""
from __future__ import annotations

import itertools
import warnings

import torch
import torch.nn.functional as F

from hwprof.kernels import caches, flops
from hwprof.kernels.case import Case, nbytes, rel_error, stored_bytes
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.precision import PRECISIONS, fp32_matmul_mode
from hwprof.kernels.sparsity import prune
from hwprof.kernels.spec import MatmulSpec

MAX_COPIES = 256


def copies_for(weight_bytes: int, cold_bytes: int) -> int:
    """Pure: how many copies of a weight make its calls read it from memory (1 for one already that large)."""
    return max(1, min(MAX_COPIES, -(-cold_bytes // max(1, weight_bytes))))


def build_linear(spec: MatmulSpec, device: torch.device, seed: int, cold_bytes: int | None = None) -> Case:
    """`cold_bytes`: the weight memory to cycle through (default: the device's, kernels.caches)."""
    prec = PRECISIONS[spec.precision]
    cold_bytes = cold_bytes or caches.cold_bytes(device)
    if prec.family not in ("float", "tf32"):
        raise Unsupported(f"a {spec.kernel} layer in {spec.precision} is a quantization scheme's job "
                          "(w8a8, w8a16, fp8-row, fp8w): plain int8 and fp8 tensors have no linear layer")
    if prec.family == "tf32" and device.type != "cuda":
        raise Unsupported("tf32 is a tensor-core mode of NVIDIA GPUs (Ampere, sm_80, and newer); "
                          "CPU matmul has no TF32 path")
    t, n, k = spec.shape
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(t, k, generator=gen, device=device)
    w = torch.randn(n, k, generator=gen, device=device) * 0.02        # [out, in]
    bias = torch.randn(n, generator=gen, device=device) * 0.02 if spec.kernel == "conv1d" else None
    pattern = spec.sparsity.pattern
    if pattern == "2:4":
        raise Unsupported("2:4 is measured as a matmul kernel, not in a model's linear layers")
    w_used, density, kept = prune(w, spec.sparsity)
    if pattern == "unstructured":
        physical = flops.sparse_matmul_flops(kept, t)
    elif pattern == "block":
        physical = flops.block_sparse_matmul_flops(kept, spec.sparsity.block, spec.sparsity.block, t)
    else:
        physical = spec.logical_flops
    xd = x.to(prec.dtype)
    bd = bias.to(prec.dtype) if bias is not None else None
    one = _realise(w_used, prec.dtype, spec, pattern)
    copies = [one] + [_realise(w_used, prec.dtype, spec, pattern) for _ in range(copies_for(stored_bytes(one), cold_bytes) - 1)]
    order = itertools.cycle(copies)
    if pattern != "dense":                         # y^T = W_sparse @ x^T: the pruned weight is the sparse operand
        run = lambda: torch.sparse.mm(next(order), xd.t()).t() + (bd if bd is not None else 0)   # noqa: E731
    elif spec.kernel == "conv1d":
        run = lambda: torch.addmm(bd, xd, next(order))   # noqa: E731
    else:
        run = lambda: F.linear(xd, next(order))          # noqa: E731

    def error(out) -> float:
        ref = x.double() @ w_used.double().t() + (bias.double() if bias is not None else 0)
        return rel_error(out, ref)
    weight = stored_bytes(one)
    io = nbytes(xd) + weight + t * n * prec.element_bytes
    return Case(spec=spec, run=run, logical_flops=spec.logical_flops, physical_flops=physical, density=density,
                backend={"dense": "default", "unstructured": "csr", "block": "bsr"}[pattern], bytes_moved=io,
                error_fn=error, context=lambda: fp32_matmul_mode(device, tf32=prec.family == "tf32"),
                operands={"x": xd, "weight": one}, weight_bytes=weight, extras={"weight_copies": float(len(copies))})


def _realise(w: torch.Tensor, dtype: torch.dtype, spec: MatmulSpec, pattern: str) -> torch.Tensor:
    """One copy of the weight as the step stores it: [out, in] (F.linear), [in, out] (Conv1D), or CSR/BSR."""
    wd = w.to(dtype)
    if pattern == "dense":
        return wd.t().contiguous() if spec.kernel == "conv1d" else wd.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if pattern == "unstructured":
            return wd.to_sparse_csr()
        return wd.to_sparse_bsr((spec.sparsity.block, spec.sparsity.block))
