"""A built case: inputs allocated, a `run()` callable, FLOP counts and an error function."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from hwprof.kernels.spec import Spec


@dataclass
class Case:
    spec: Spec
    run: Callable[[], Any]
    logical_flops: int
    physical_flops: int
    density: float
    backend: str
    bytes_moved: int                          # dense operand + result bytes in storage dtype (roofline)
    error_fn: Callable[[Any], float]          # rel_error of an output of run()
    context: Callable[[], AbstractContextManager] = nullcontext
    extras: dict[str, float] = field(default_factory=dict)   # more columns, e.g. pruning_error
    # The tensors run() multiplies, as it holds them (dtype, layout, strides): what "runs as declared" means.
    operands: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()               # what a row must say about how this case really computes
    # Bytes of the stored weight, scales and indices included: B, or the pruned operand of a sparse case
    # (pruning is applied to weights); None where there is no weight (attention).
    weight_bytes: int | None = None

    def rel_error(self, output: Any) -> float:
        return self.error_fn(output)


def tensors_of(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for t in output if isinstance(t, torch.Tensor)]


def all_finite(output: Any) -> bool:
    # fp8 tensors have no isfinite kernel; widen those first
    return all(bool(torch.isfinite(t.float() if t.element_size() == 1 else t).all())
               for t in tensors_of(output) if t.dtype.is_floating_point)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref||_F / ||ref||_F, computed in fp64."""
    ref = ref.detach().to(torch.float64)
    diff = out.detach().to(torch.float64) - ref
    denom = torch.linalg.vector_norm(ref)
    if float(denom) == 0.0:
        return float(torch.linalg.vector_norm(diff))
    return float(torch.linalg.vector_norm(diff) / denom)


def max_rel_error(outs: list[torch.Tensor], refs: list[torch.Tensor]) -> float:
    """The worst tensor decides (output and, for fwd+bwd, each input gradient)."""
    return max(rel_error(o, r) for o, r in zip(outs, refs))


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


_COMPRESSED = (torch.sparse_csr, torch.sparse_bsr)


def stored_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor really holds: values and index arrays of a CSR/BSR tensor, the inner tensors (data,
    scales, zero points, metadata) of a tensor subclass such as a quantized or 2:4 tensor, recursively;
    numel x element size for a plain strided tensor."""
    if t.layout in _COMPRESSED:
        return sum(nbytes(x) for x in (t.values(), t.crow_indices(), t.col_indices()))
    if type(t) not in (torch.Tensor, torch.nn.Parameter) and hasattr(t, "__tensor_flatten__"):
        names, _ = t.__tensor_flatten__()
        return sum(stored_bytes(getattr(t, name)) for name in names if getattr(t, name) is not None)
    return nbytes(t)
