"""Specs: the hashable description of one configuration, before anything is allocated.

A spec's `config_id` is stable across runs and machines (it is how runs are resumed and compared).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from hwprof.kernels import flops
from hwprof.kernels.precision import ATTENTION_PRECISIONS, PRECISIONS
from hwprof.kernels.schemes import SCHEME_FORMS, parse_scheme

PASSES = ("fwd", "fwd+bwd")
ATTENTION_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")


@dataclass(frozen=True)
class SparsitySpec:
    """`dense`, `unstructured:D`, `block:B:D` or `2:4` (D = density kept, in (0, 1])."""
    pattern: str                 # dense | unstructured | block | 2:4
    density: float = 1.0
    block: int = 0

    @classmethod
    def parse(cls, text: str) -> "SparsitySpec":
        parts = str(text).strip().split(":")
        try:
            if parts == ["dense"]:
                return cls("dense")
            if parts == ["2", "4"]:
                return cls("2:4", 0.5)
            if parts[0] == "unstructured" and len(parts) == 2:
                return cls("unstructured", _density(parts[1]))
            if parts[0] == "block" and len(parts) == 3:
                block = int(parts[1])
                if block <= 0:
                    raise ValueError("block size must be a positive integer")
                return cls("block", _density(parts[2]), block)
        except ValueError as e:
            raise ValueError(f"sparsity {text!r}: {e}") from None
        raise ValueError(f"unknown sparsity {text!r} (use dense, unstructured:D, block:B:D or 2:4)")

    def __str__(self) -> str:
        if self.pattern == "unstructured":
            return f"unstructured:{self.density:g}"
        if self.pattern == "block":
            return f"block:{self.block}:{self.density:g}"
        return self.pattern

    @property
    def column(self) -> str:
        """The `sparsity` column: the pattern without its density."""
        return f"block:{self.block}" if self.pattern == "block" else self.pattern


def _density(text: str) -> float:
    d = float(text)
    if not 0.0 < d <= 1.0:
        raise ValueError(f"density {d:g} is outside (0, 1]")
    return d


def parse_mask(text: str) -> str:
    text = str(text).strip()
    if text in ("none", "causal"):
        return text
    if text.startswith("window:"):
        try:
            w = int(text.split(":", 1)[1])
        except ValueError:
            w = 0
        if w > 0:
            return f"window:{w}"
    raise ValueError(f"unknown mask {text!r} (use none, causal or window:W with W > 0)")


def shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


MATMUL_KERNELS = ("matmul", "linear", "conv1d")


@dataclass(frozen=True)
class MatmulSpec:
    """A product [M, K] x [K, N] (batched: [B, M, N, K]). `kernel` says how it is realised:
    - matmul: A @ B, both operands drawn afresh; a sparse pattern prunes A;
    - linear: a model's linear layer, tokens [M, K] by F.linear against a weight stored [N, K] (as nn.Linear);
    - conv1d: the same with a bias, by addmm against a weight stored [K, N] (as transformers' GPT-2 Conv1D).
    For linear and conv1d a sparse pattern prunes the weight, and the weight is read cold, as in a step
    (kernels.linear)."""
    shape: tuple[int, ...]       # (M, N, K) or (B, M, N, K)
    precision: str
    sparsity: SparsitySpec = SparsitySpec("dense")
    pass_: str = "fwd"
    kernel: str = "matmul"

    def __post_init__(self):
        if self.kernel not in MATMUL_KERNELS:
            raise ValueError(f"unknown matmul kernel {self.kernel!r} (use {', '.join(MATMUL_KERNELS)})")
        if self.kernel != "matmul" and (len(self.shape) != 3 or self.pass_ != "fwd"):
            raise ValueError(f"a {self.kernel} layer is [tokens, out, in], forward only")
        if len(self.shape) not in (3, 4) or any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"matmul shape {list(self.shape)} must be [M, N, K] or [B, M, N, K] of positive integers")
        if self.precision not in PRECISIONS and parse_scheme(self.precision) is None:
            raise ValueError(f"unknown precision {self.precision!r} (precisions: {', '.join(PRECISIONS)}; "
                             f"quantization schemes: {', '.join(SCHEME_FORMS)})")
        if self.pass_ not in PASSES:
            raise ValueError(f"unknown pass {self.pass_!r} (use fwd or fwd+bwd)")

    @property
    def bmnk(self) -> tuple[int, int, int, int]:
        return (1, *self.shape) if len(self.shape) == 3 else tuple(self.shape)  # type: ignore[return-value]

    @property
    def config_id(self) -> str:
        return f"{self.kernel}/{shape_str(self.shape)}/{self.precision}/{self.sparsity}/{self.pass_}"

    @property
    def logical_flops(self) -> int:
        b, m, n, k = self.bmnk
        return flops.with_pass(flops.matmul_flops(m, n, k, b), self.pass_, "matmul")

    @property
    def sparsity_column(self) -> str:
        return self.sparsity.column

    @property
    def density(self) -> float:
        """Nominal share of the dense work kept (the pruned case reports the density it achieved)."""
        return self.sparsity.density

    @property
    def backend(self) -> str:
        if self.precision not in PRECISIONS:
            return "torchao"                          # a quantization scheme
        if self.sparsity.pattern == "unstructured":
            return "csr"
        if self.sparsity.pattern == "block":
            return "bsr"
        if self.sparsity.pattern == "2:4":
            return "semi-structured"
        return {"fp8": "scaled_mm", "int8": "int_mm"}.get(PRECISIONS[self.precision].family, "default")

    def element_count(self) -> int:
        b, m, n, k = self.bmnk
        return b * (m * k + k * n + m * n)


@dataclass(frozen=True)
class AttentionSpec:
    shape: tuple[int, ...]       # (B, H, Sq, Sk, D) or (B, H, Sq, Sk, D, H_kv)
    precision: str
    mask: str = "none"
    backend: str = "auto"
    pass_: str = "fwd"
    kernel: str = "attention"

    def __post_init__(self):
        if len(self.shape) not in (5, 6) or any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"attention shape {list(self.shape)} must be [B, H, Sq, Sk, D] (optional 6th: KV heads) "
                             "of positive integers")
        if len(self.shape) == 6 and self.shape[1] % self.shape[5]:
            raise ValueError(f"attention shape {list(self.shape)}: query heads {self.shape[1]} are not a multiple "
                             f"of KV heads {self.shape[5]}")
        if self.precision not in ATTENTION_PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not available for attention "
                             f"(use {', '.join(ATTENTION_PRECISIONS)})")
        parse_mask(self.mask)
        if self.backend not in ATTENTION_BACKENDS:
            raise ValueError(f"unknown attention backend {self.backend!r} (use {', '.join(ATTENTION_BACKENDS)})")
        if self.pass_ not in PASSES:
            raise ValueError(f"unknown pass {self.pass_!r} (use fwd or fwd+bwd)")

    @property
    def dims(self) -> tuple[int, int, int, int, int, int]:
        b, h, sq, sk, d = self.shape[:5]
        hkv = self.shape[5] if len(self.shape) == 6 else h
        return b, h, sq, sk, d, hkv

    @property
    def config_id(self) -> str:
        return f"attention/{shape_str(self.shape)}/{self.precision}/{self.mask}/{self.backend}/{self.pass_}"

    @property
    def pairs(self) -> int:
        _, _, sq, sk, _, _ = self.dims
        return flops.mask_pairs(self.mask, sq, sk)

    @property
    def density(self) -> float:
        _, _, sq, sk, _, _ = self.dims
        return self.pairs / (sq * sk)

    @property
    def logical_flops(self) -> int:
        b, h, sq, sk, d, _ = self.dims
        return flops.with_pass(flops.attention_fwd_flops(b, h, sq, sk, d), self.pass_, "attention")

    def physical_flops(self, backend: str) -> int:
        """FLOPs the realisation executes on `backend` (the one that really ran, after `auto` is resolved):
        the causal pairs where the kernel skips masked blocks, every pair otherwise."""
        b, h, sq, sk, d, _ = self.dims
        pairs = flops.executed_pairs(self.mask, sq, sk, backend)
        return flops.with_pass(flops.attention_fwd_flops(b, h, sq, sk, d, pairs=pairs), self.pass_, "attention")

    @property
    def sparsity_column(self) -> str:
        return "dense" if self.mask == "none" else self.mask

    def element_count(self) -> int:
        b, h, sq, sk, d, hkv = self.dims
        return b * (2 * h * sq * d + 2 * hkv * sk * d)


Spec = Union[MatmulSpec, AttentionSpec]


def measured_beside(spec: Spec) -> str:
    """The configuration whose rounds this one's must alternate with, so that drift does not read as a
    difference between them: a whole step's, for its hollow twins (kernels.step); its own, for the rest."""
    beside = getattr(spec, "beside", None)
    return beside().config_id if beside else spec.config_id


def reference_of(spec: Spec) -> Spec:
    """The reference realisation hef is measured against: dense fp32 IEEE of the same kernel, shape and pass
    (for attention: the math backend in fp32 with the same mask)."""
    if isinstance(spec, MatmulSpec):
        return MatmulSpec(spec.shape, "fp32", SparsitySpec("dense"), spec.pass_, spec.kernel)
    if isinstance(spec, AttentionSpec):
        return AttentionSpec(spec.shape, "fp32", spec.mask, "math", spec.pass_)
    return spec.reference()           # the step's kernels of their own kinds (kernels.ops, kernels.step)
