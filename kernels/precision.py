"""Precisions a case can be realised in."""
from __future__ import annotations

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

