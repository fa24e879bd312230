"""Magnitude pruning into the patterns hwprof measures. Pure tensor functions, no timing."""
from __future__ import annotations

import torch

from hwprof.kernels.errors import Unsupported
from hwprof.kernels.spec import SparsitySpec


def kept_count(total: int, density: float) -> int:
    """Elements (or blocks) kept for a density: nearest integer, at least one."""
    return max(1, min(total, round(density * total)))


def prune(a: torch.Tensor, spec: SparsitySpec) -> tuple[torch.Tensor, float, int]:
    """Return (pruned copy of `a`, density achieved, kept units: nnz or kept blocks)."""
    if spec.pattern == "dense":
        return a, 1.0, a.numel()
    if spec.pattern == "unstructured":
        return prune_unstructured(a, spec.density)
    if spec.pattern == "block":
        return prune_blocks(a, spec.block, spec.density)
    if spec.pattern == "2:4":
        return prune_2_4(a)
    raise ValueError(f"unknown sparsity pattern {spec.pattern!r}")


def prune_unstructured(a: torch.Tensor, density: float) -> tuple[torch.Tensor, float, int]:
    keep = kept_count(a.numel(), density)
    flat = a.reshape(-1)
    idx = torch.topk(flat.abs(), keep, sorted=False).indices
    out = torch.zeros_like(flat)
    out[idx] = flat[idx]
    return out.reshape(a.shape), keep / a.numel(), keep


def prune_blocks(a: torch.Tensor, block: int, density: float) -> tuple[torch.Tensor, float, int]:
    m, k = a.shape[-2:]
    if m % block or k % block:
        raise Unsupported(f"block:{block} needs M and K divisible by {block} (A is {m}x{k})")
    lead = a.shape[:-2]
    blocks = a.reshape(*lead, m // block, block, k // block, block)
    norms = blocks.abs().sum(dim=(-3, -1))                     # one magnitude per block
    n_blocks = norms.numel()
    keep = kept_count(n_blocks, density)
    idx = torch.topk(norms.reshape(-1), keep, sorted=False).indices
    mask = torch.zeros(n_blocks, dtype=torch.bool, device=a.device)
    mask[idx] = True
    mask = mask.reshape(norms.shape).unsqueeze(-1).unsqueeze(-3)  # broadcast over the block's elements
    out = (blocks * mask).reshape(a.shape)
    return out, keep / n_blocks, keep


def prune_2_4(a: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """Keep the two largest of every four consecutive elements along K (the reduction dimension)."""
    k = a.shape[-1]
    if k % 4:
        raise Unsupported(f"2:4 needs K divisible by 4 (K is {k})")
    groups = a.reshape(*a.shape[:-1], k // 4, 4)
    idx = torch.topk(groups.abs(), 2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True)
    return (groups * mask).reshape(a.shape), 0.5, a.numel() // 2


def is_valid_2_4(a: torch.Tensor) -> bool:
    groups = a.reshape(*a.shape[:-1], a.shape[-1] // 4, 4)
    return bool(((groups != 0).sum(dim=-1) <= 2).all())
