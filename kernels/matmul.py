"""Matmul cases: dense across precisions, and sparse A (CSR, BSR, 2:4) times dense B.

The operands are fp32 normals drawn from a seeded generator; every realisation starts from them
(cast, quantized or pruned), and `rel_error` compares against an fp64 product of the same logical
operands (after pruning), so the error a precision costs is visible next to the speed it buys.
"""
from __future__ import annotations

import warnings

import torch

from hwprof.kernels import flops
from hwprof.kernels.case import Case, max_rel_error, rel_error, stored_bytes
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.precision import PRECISIONS, fp32_matmul_mode
from hwprof.kernels.sparsity import prune
from hwprof.kernels.spec import MatmulSpec

FP8_MAX = 448.0      # largest finite float8_e4m3fn
INT8_MAX = 127.0


def check_support(spec: MatmulSpec, device: torch.device) -> None:
    """Raise Unsupported, before anything is allocated, for combinations known not to run."""
    family = PRECISIONS[spec.precision].family
    batched = len(spec.shape) == 4
    _, m, n, k = spec.bmnk
    cuda = device.type == "cuda"
    cap = torch.cuda.get_device_capability(device) if cuda else (0, 0)
    if family == "tf32":
        if not cuda:
            raise Unsupported("tf32 is a tensor-core mode of NVIDIA GPUs (Ampere, sm_80, and newer); "
                              "CPU matmul has no TF32 path")
        if cap < (8, 0):
            raise Unsupported(f"tf32 needs sm_80 or newer; this GPU is sm_{cap[0]}{cap[1]}")
    if family == "fp8":
        if batched:
            raise Unsupported("torch._scaled_mm (fp8) is 2-D only; use an [M, N, K] shape")
        if cuda and (k % 16 or n % 16):
            # aten/src/ATen/native/cuda/Blas.cpp: mat1.size(1) (K) and mat2.size(1) (N) must be multiples of 16;
            # M is free. The CPU kernel has no such rule.
            raise Unsupported(f"torch._scaled_mm (fp8) on CUDA needs K and N divisible by 16 (got {m}x{n}x{k})")
        if cuda and cap < (8, 9):
            raise Unsupported(f"fp8 matmul needs sm_89 (Ada) or sm_90 (Hopper); this GPU is sm_{cap[0]}{cap[1]}")
    if family == "int8":
        if batched:
            raise Unsupported("torch._int_mm (int8) is 2-D only; use an [M, N, K] shape")
        if cuda and (m <= 16 or k % 8 or n % 8):
            raise Unsupported(f"torch._int_mm on CUDA needs M > 16 and K, N divisible by 8 (got {m}x{n}x{k})")
    if family in ("fp8", "int8") and spec.pass_ != "fwd":
        raise Unsupported(f"{spec.precision} matmul has no autograd in torch (_scaled_mm/_int_mm); measure fwd")
    pattern = spec.sparsity.pattern
    if pattern != "dense":
        if spec.pass_ != "fwd":
            raise Unsupported("sparse matmul is measured forward only")
        if pattern in ("unstructured", "block") and family != "float":
            raise Unsupported(f"torch has no {spec.backend.upper()} matmul kernel for {spec.precision}")
        if pattern in ("unstructured", "block") and batched:
            raise Unsupported(f"{spec.backend.upper()} matmul is measured 2-D only; use an [M, N, K] shape")
        if pattern == "2:4":
            if family == "fp8":
                raise Unsupported("2:4 with fp8 is not measured: hwprof's 2:4 path covers torch's semi-structured "
                                  "fp16, bf16, int8 and fp32 kernels")
            if not cuda:
                raise Unsupported("2:4 semi-structured sparsity needs CUDA sm_80+ "
                                  "(torch.sparse.to_sparse_semi_structured has no CPU kernel)")
            if cap < (8, 0):
                raise Unsupported(f"2:4 semi-structured sparsity needs sm_80 or newer; this GPU is sm_{cap[0]}{cap[1]}")
            if spec.precision == "fp32":
                # torch's semi-structured float32 kernels (cuSPARSELt and CUTLASS) compute in TF32: sparse
                # tensor cores have no IEEE fp32 mode. A row called fp32 would count TF32's speed as sparsity's.
                raise Unsupported("2:4 has no IEEE fp32 kernel: torch's semi-structured float32 matmul computes in "
                                  "TF32 (sparse tensor cores have no fp32 mode); measure tf32 with 2:4, referenced "
                                  "against dense fp32 and beside dense tf32")
            if batched:
                raise Unsupported("2:4 semi-structured matmul is measured 2-D only")


def _scale(t: torch.Tensor, qmax: float) -> torch.Tensor:
    """Per-tensor symmetric scale so that amax maps to qmax (float32 scalar, as _scaled_mm wants)."""
    return (t.abs().max().float() / qmax).clamp(min=torch.finfo(torch.float32).tiny)


def build_matmul(spec: MatmulSpec, device: torch.device, seed: int, quality: bool = True) -> Case:
    """The case; `quality=False` leaves out pruning_error (two fp64 products, most of a large sparse case's
    build), which a rebuild of the same seed would only compute again."""
    check_support(spec, device)
    prec = PRECISIONS[spec.precision]
    b, m, n, k = spec.bmnk
    lead = (b,) if len(spec.shape) == 4 else ()
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(*lead, m, k, generator=gen, device=device)
    bmat = torch.randn(*lead, k, n, generator=gen, device=device)

    a_pruned, density, kept = prune(a, spec.sparsity)
    pattern = spec.sparsity.pattern
    if pattern == "unstructured":
        physical = flops.sparse_matmul_flops(kept, n, b)
    elif pattern == "block":
        physical = flops.block_sparse_matmul_flops(kept, spec.sparsity.block, spec.sparsity.block, n, b)
    else:
        physical = int(spec.logical_flops * density)

    extras: dict[str, float] = {}
    if pattern != "dense" and quality:
        # Quality lost to pruning, next to the speed it buys: pruned vs unpruned product, both fp64.
        extras["pruning_error"] = rel_error(a_pruned.double() @ bmat.double(), a.double() @ bmat.double())
    del a

    out_bytes = b * m * n * (4 if prec.family == "int8" else 2 if prec.family == "fp8" else prec.element_bytes)
    io_bytes = b * (m * k + k * n) * prec.element_bytes + out_bytes
    context = lambda: fp32_matmul_mode(device, tf32=prec.family == "tf32")  # noqa: E731

    def reference() -> torch.Tensor:
        return a_pruned.double() @ bmat.double()

    if prec.family == "fp8":
        sa, sb = _scale(a_pruned, FP8_MAX), _scale(bmat, FP8_MAX)
        a8 = (a_pruned / sa).to(torch.float8_e4m3fn)
        b8 = column_major((bmat / sb).to(torch.float8_e4m3fn))     # _scaled_mm requires B column-major
        operands = {"a": a8, "b": b8}
        run = lambda: _first(torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16))  # noqa: E731
        error_fn = lambda out: rel_error(out, reference())  # noqa: E731
    elif prec.family == "int8":
        sa, sb = _scale(a_pruned, INT8_MAX), _scale(bmat, INT8_MAX)
        a8 = torch.round(a_pruned / sa).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
        # cuBLASLt's int8 tensor-core kernels want the "TN" layout (B column-major); torch's own int8 2:4 tests
        # refuse a row-major B. Column-major B is also the faster layout for the CPU's _int_mm.
        b8 = column_major(torch.round(bmat / sb).clamp(-INT8_MAX, INT8_MAX).to(torch.int8))
        if pattern == "2:4":                 # quantizing keeps zeros zero, so the 2:4 pattern survives
            a8_sparse = _semi_structured(a8)
            operands = {"a": a8_sparse, "b": b8}
            run = int8_semi_structured_mm(a8_sparse, b8)
        else:
            operands = {"a": a8, "b": b8}
            run = lambda: torch._int_mm(a8, b8)  # noqa: E731
        error_fn = lambda out: rel_error(out.double() * (sa.double() * sb.double()), reference())  # noqa: E731
    elif pattern == "dense" and spec.pass_ == "fwd+bwd":
        run, error_fn, operands = _fwd_bwd(a_pruned, bmat, prec.dtype, gen)
    else:
        a_op = a_pruned.to(prec.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)    # torch's "sparse support is in beta" notice
            if pattern == "unstructured":
                a_op = a_op.to_sparse_csr()
            elif pattern == "block":
                a_op = a_op.to_sparse_bsr((spec.sparsity.block, spec.sparsity.block))
            elif pattern == "2:4":
                a_op = _semi_structured(a_op)
        b_op = bmat.to(prec.dtype)
        operands = {"a": a_op, "b": b_op}
        run = (lambda: torch.mm(a_op, b_op)) if pattern != "dense" else (lambda: torch.matmul(a_op, b_op))
        error_fn = lambda out: rel_error(out, reference())  # noqa: E731

    # the weight: the pruned operand of a sparse case, B otherwise, with its per-tensor scale if quantized
    weight = operands["a"] if pattern != "dense" else operands["b"]
    weight_bytes = stored_bytes(weight) + (4 if prec.family in ("fp8", "int8") else 0)
    return Case(spec=spec, run=run, logical_flops=spec.logical_flops, physical_flops=physical, density=density,
                backend=spec.backend, bytes_moved=io_bytes, error_fn=error_fn, context=context, extras=extras,
                operands=operands, weight_bytes=weight_bytes)


def column_major(t: torch.Tensor) -> torch.Tensor:
    """The same matrix stored column-major (stride (1, rows))."""
    return t.t().contiguous().t()


def _first(out):
    """torch._scaled_mm returned (out, amax) before torch 2.5 and returns out since."""
    return out[0] if isinstance(out, tuple) else out


def int8_semi_structured_mm(a_sparse, b_col: torch.Tensor):
    """A call of torch's int8 2:4 kernel the way torch's own tests make it: B column-major (row/column layout;
    a row-major B is refused) and an int32 output (torch.mm on int8 returns int8, which saturates).
    cuSPARSELt: torch._cslt_sparse_mm on the compressed tensor; CUTLASS: torch._sparse_semi_structured_mm."""
    if getattr(a_sparse, "BACKEND", "") == "cusparselt":
        packed = a_sparse.packed
        return lambda: torch._cslt_sparse_mm(packed, b_col, out_dtype=torch.int32)
    values, meta = a_sparse.values(), a_sparse.indices()
    return lambda: torch._sparse_semi_structured_mm(values, meta, b_col, out_dtype=torch.int32)


def _semi_structured(a: torch.Tensor) -> torch.Tensor:
    from torch.sparse import to_sparse_semi_structured
    try:
        return to_sparse_semi_structured(a)
    except (RuntimeError, ValueError, NotImplementedError) as e:
        raise Unsupported(f"torch.sparse.to_sparse_semi_structured refused this case: {e}") from None


def _fwd_bwd(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, gen: torch.Generator):
    """Forward and both input gradients; grads are returned, not accumulated, so calls are independent."""
    a_op = a.to(dtype).requires_grad_(True)
    b_op = b.to(dtype).requires_grad_(True)
    grad_out = torch.randn(*a.shape[:-1], b.shape[-1], generator=gen, device=a.device)
    g_op = grad_out.to(dtype)

    def run():
        out = torch.matmul(a_op, b_op)
        ga, gb = torch.autograd.grad(out, (a_op, b_op), g_op)
        return out.detach(), ga, gb

    def error_fn(output) -> float:
        a64, b64, g64 = a.double(), b.double(), grad_out.double()
        refs = [a64 @ b64, g64 @ b64.transpose(-1, -2), a64.transpose(-1, -2) @ g64]
        return max_rel_error(list(output), refs)

    return run, error_fn, {"a": a_op, "b": b_op}
