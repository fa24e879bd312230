"""Attention cases: torch's scaled_dot_product_attention under a chosen backend, mask and pass.

Logical FLOPs are the dense count whatever the mask; physical FLOPs count only unmasked (q, k)
pairs (FlashAttention's convention). The reference for `rel_error` is an fp64 attention computed
here in query chunks, so it never materialises the full score matrix and scales to long sequences.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from hwprof.kernels.case import Case, max_rel_error, nbytes
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.precision import PRECISIONS, fp32_matmul_mode
from hwprof.kernels.spec import AttentionSpec

REFERENCE_CHUNK_BYTES = 256 * 2**20     # fp64 scores held at once by the reference


@contextmanager
def _attention_context(backend: str, device: torch.device):
    """The chosen SDPA backend, and fp32 pinned to IEEE (the math backend's matmuls would otherwise follow
    the global TF32 switch)."""
    with fp32_matmul_mode(device, tf32=False):
        if backend == "auto":
            yield
            return
        from torch.nn.attention import SDPBackend, sdpa_kernel
        enum = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[backend]
        with sdpa_kernel([enum]):
            yield


def build_mask(mask: str, sq: int, sk: int, device: torch.device) -> torch.Tensor | None:
    """Boolean mask (True = attend) for window masks; None for `none` and `causal` (is_causal is used)."""
    if not mask.startswith("window:"):
        return None
    return _allowed(mask, 0, sq, sk, device)


def check_support(spec: AttentionSpec, device: torch.device) -> None:
    if device.type == "cpu" and spec.backend in ("efficient", "cudnn"):
        raise Unsupported(f"torch's {spec.backend} attention kernel runs only on CUDA (on CPU torch has math and flash)")
    b, h, sq, sk, d, hkv = spec.dims
    if hkv != h and not _has_enable_gqa():
        raise Unsupported("grouped KV heads need torch >= 2.5 (scaled_dot_product_attention(enable_gqa=True))")


def _has_enable_gqa() -> bool:
    import inspect
    try:
        return "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):   # builtins without a signature: assume the modern API
        return tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)


def reference_attention(q, k, v, mask: str, grad_out=None):
    """fp64 attention (and input gradients when grad_out is given), chunked over queries."""
    q, k, v = q.double(), k.double(), v.double()
    b, h, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    rep = h // hkv
    kx, vx = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    if grad_out is not None:
        kx = kx.detach().requires_grad_(True)
        vx = vx.detach().requires_grad_(True)
    scale = 1.0 / math.sqrt(d)
    chunk = max(1, REFERENCE_CHUNK_BYTES // max(1, b * h * sk * 8))
    outs, dqs = [], []
    for s in range(0, sq, chunk):
        qc = q[:, :, s:s + chunk]
        if grad_out is not None:
            qc = qc.detach().requires_grad_(True)
        scores = (qc @ kx.transpose(-1, -2)) * scale
        allowed = _allowed(mask, s, qc.shape[2], sk, q.device)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        oc = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ vx
        if grad_out is not None:
            oc.backward(grad_out[:, :, s:s + chunk].double())
            dqs.append(qc.grad)
        outs.append(oc.detach())
    out = torch.cat(outs, dim=2)
    if grad_out is None:
        return [out]
    dk = kx.grad.reshape(b, hkv, rep, sk, d).sum(2)
    dv = vx.grad.reshape(b, hkv, rep, sk, d).sum(2)
    return [out, torch.cat(dqs, dim=2), dk, dv]


def _allowed(mask: str, start: int, rows: int, sk: int, device) -> torch.Tensor | None:
    """Which keys queries start..start+rows-1 may see; the one definition of the masks (causal: top-left,
    as torch's is_causal; window:W: the W most recent keys including the query's own position)."""
    if mask == "none":
        return None
    i = torch.arange(start, start + rows, device=device).unsqueeze(1)
    j = torch.arange(sk, device=device).unsqueeze(0)
    if mask == "causal":
        return j <= i
    w = int(mask.split(":", 1)[1])
    return (j <= i) & (j > i - w)


_SDP_NAMES = {"MATH": "math", "FLASH_ATTENTION": "flash", "EFFICIENT_ATTENTION": "efficient",
              "CUDNN_ATTENTION": "cudnn"}


def resolve_backend(backend: str, q, k, v, kwargs: dict) -> str:
    """The backend that runs: the named one, or for `auto` the one torch's dispatcher picks for these inputs
    (torch._fused_sdp_choice); "math" when torch cannot say, since that counts the dense work."""
    if backend != "auto":
        return backend
    try:
        from torch.nn.attention import SDPBackend
        choice = torch._fused_sdp_choice(q, k, v, kwargs.get("attn_mask"), 0.0, kwargs.get("is_causal", False),
                                         enable_gqa=kwargs.get("enable_gqa", False))
        return _SDP_NAMES.get(SDPBackend(choice).name, "math")
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return "math"


def build_attention(spec: AttentionSpec, device: torch.device, seed: int) -> Case:
    check_support(spec, device)
    dtype = PRECISIONS[spec.precision].dtype
    b, h, sq, sk, d, hkv = spec.dims
    gen = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(b, h, sq, d, generator=gen, device=device)
    k = torch.randn(b, hkv, sk, d, generator=gen, device=device)
    v = torch.randn(b, hkv, sk, d, generator=gen, device=device)
    attn_mask = build_mask(spec.mask, sq, sk, device)
    kwargs = {"attn_mask": attn_mask, "is_causal": spec.mask == "causal"}
    if hkv != h:
        kwargs["enable_gqa"] = True
    backward = spec.pass_ == "fwd+bwd"
    qd, kd, vd = (t.to(dtype).requires_grad_(backward) for t in (q, k, v))
    io = sum(nbytes(t) for t in (qd, kd, vd)) + nbytes(qd)     # q, k, v read, o written
    if backward:
        grad_out = torch.randn(b, h, sq, d, generator=gen, device=device)
        g = grad_out.to(dtype)
        io *= 2                                                  # grads of the same sizes

        def run():
            out = F.scaled_dot_product_attention(qd, kd, vd, **kwargs)
            return (out.detach(), *torch.autograd.grad(out, (qd, kd, vd), g))

        error_fn = lambda output: max_rel_error(list(output), reference_attention(q, k, v, spec.mask, grad_out))  # noqa: E731
    else:
        def run():
            return F.scaled_dot_product_attention(qd, kd, vd, **kwargs)

        error_fn = lambda out: max_rel_error([out], reference_attention(q, k, v, spec.mask))  # noqa: E731

    ran = resolve_backend(spec.backend, qd, kd, vd, kwargs)
    # torch's math backend on CPU upcasts fp16/bf16 inputs to fp32 and computes there (seen at the dispatcher);
    # the row says so rather than credit a 16-bit format with fp32 arithmetic.
    flags = ("upcast-fp32",) if device.type == "cpu" and ran == "math" and dtype in (torch.float16, torch.bfloat16) else ()
    return Case(spec=spec, run=run, logical_flops=spec.logical_flops, physical_flops=spec.physical_flops(ran),
                density=spec.density, backend=spec.backend if spec.backend != "auto" else f"auto:{ran}", bytes_moved=io, error_fn=error_fn,
                context=lambda: _attention_context(spec.backend, device), operands={"q": qd, "k": kd, "v": vd}, flags=flags)
