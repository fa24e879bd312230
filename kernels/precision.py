"""Precisions a case can be realised in."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    name: str
    dtype: torch.dtype        # dtype of the operands as stored
    family: str               # "float" | "tf32" | "fp8" | "int8"

    @property
    def element_bytes(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in [
        Precision("fp64", torch.float64, "float"),
        Precision("fp32", torch.float32, "float"),
        Precision("tf32", torch.float32, "tf32"),
        Precision("fp16", torch.float16, "float"),
        Precision("bf16", torch.bfloat16, "float"),
        Precision("fp8_e4m3", torch.float8_e4m3fn, "fp8"),
        Precision("int8", torch.int8, "int8"),
    ]
}
ATTENTION_PRECISIONS = ("fp64", "fp32", "fp16", "bf16")

# The wider precisions that hold every operand value of a precision exactly. A kernel may compute in one of
# them (MKL's bf16 GEMM and torch's CPU attention widen bf16 to fp32 where the CPU has no bf16 arithmetic,
# torchao's weight-only schemes dequantise), so a machine does a precision's work at least as fast as it does
# the work of any of these: that bounds its roof from below (`running.efficiency.best_roof`).
EXACT_IN: dict[str, tuple[str, ...]] = {
    "fp32": ("fp64",),
    "tf32": ("fp32", "fp64"),
    "fp16": ("fp32", "fp64"),
    "bf16": ("fp32", "fp64"),
    "fp8_e4m3": ("fp16", "bf16", "fp32", "fp64"),
    "int8": ("fp16", "bf16", "fp32", "fp64"),
}



@contextmanager
def fp32_matmul_mode(device: torch.device, tf32: bool):
    """fp32 matmuls in IEEE fp32 (tf32=False) or tensor-core TF32 on CUDA, whatever the global switch says;
    restored afterwards. torch >= 2.9 has the fp32-precision API, and reading the legacy `allow_tf32` after
    it was used raises, so the new API is used wherever it exists (torch/backends/cuda/__init__.py)."""
    if device.type != "cuda":
        yield
        return
    mm = torch.backends.cuda.matmul
    if hasattr(mm, "fp32_precision"):
        before = mm.fp32_precision
        mm.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            mm.fp32_precision = before
        return
    before = mm.allow_tf32
    mm.allow_tf32 = tf32
    try:
        yield
    finally:
        mm.allow_tf32 = before
