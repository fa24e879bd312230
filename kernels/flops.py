"""FLOP arithmetic (pure). A multiply and an add count as two FLOPs, never one MAC.

Logical FLOPs are those of the dense, uniform-precision reference at the nominal shape;
physical FLOPs are the work a realisation must do (nonzeros, kept blocks, unmasked pairs).
"""
from __future__ import annotations

def matmul_flops(m: int, n: int, k: int, batch: int = 1) -> int:
    return 2 * batch * m * n * k


def sparse_matmul_flops(nnz: int, n: int, batch: int = 1) -> int:
    """Unstructured sparse A [M,K] (nnz nonzeros) times dense B [K,N]."""
    return 2 * batch * nnz * n


def block_sparse_matmul_flops(kept_blocks: int, bm: int, bk: int, n: int, batch: int = 1) -> int:
    return 2 * batch * kept_blocks * bm * bk * n


def attention_fwd_flops(b: int, h: int, sq: int, sk: int, d: int, dv: int | None = None,
                        pairs: int | None = None) -> int:
    """QK^T and PV: 2*(D+Dv) FLOPs per (query, key) pair; `pairs` defaults to all Sq*Sk."""
    dv = d if dv is None else dv
    pairs = sq * sk if pairs is None else pairs
    return 2 * b * h * pairs * (d + dv)


def with_pass(fwd_flops: int, pass_: str, kernel: str) -> int:
    """Scale forward FLOPs by the pass factor; exact integers (forward counts are even)."""
    if pass_ == "fwd":
        return fwd_flops
    if pass_ != "fwd+bwd":
        raise ValueError(f"unknown pass {pass_!r}")
    if kernel == "matmul":
        return 3 * fwd_flops
    return 7 * fwd_flops // 2


def causal_pairs(sq: int, sk: int) -> int:
    """Unmasked pairs of torch's `is_causal` mask (top-left aligned: query i sees keys 0..i)."""
    if sq <= sk:
        return sq * (sq + 1) // 2
    return sk * (sk + 1) // 2 + (sq - sk) * sk


def window_pairs(sq: int, sk: int, window: int) -> int:
    """Causal sliding window: query i sees keys i-window+1 .. i (clipped to 0..sk-1)."""
    total = 0
    for i in range(sq):
        hi = min(i, sk - 1)
        lo = max(0, i - window + 1)
        if hi >= lo:
            total += hi - lo + 1
    return total


def mask_pairs(mask: str, sq: int, sk: int) -> int:
    if mask == "none":
        return sq * sk
    if mask == "causal":
        return causal_pairs(sq, sk)
    if mask.startswith("window:"):
        return window_pairs(sq, sk, int(mask.split(":", 1)[1]))
    raise ValueError(f"unknown mask {mask!r}")


# Backends that skip the key blocks a causal mask excludes (flash: torch's CUDA and CPU kernels; memory-
# efficient and cuDNN on CUDA). Any mask passed as a dense boolean tensor, and the `math` backend, compute
# every (q, k) pair and mask the scores afterwards.
BLOCK_SKIPPING_BACKENDS = ("flash", "efficient", "cudnn")


def executed_pairs(mask: str, sq: int, sk: int, backend: str) -> int:
    """(q, k) pairs the attention kernel really computes for this mask on this backend."""
    if mask == "causal" and backend in BLOCK_SKIPPING_BACKENDS:
        return causal_pairs(sq, sk)
    mask_pairs(mask, sq, sk)          # validates the mask
    return sq * sk
