"""Quantization schemes as deployed (torchao), usable wherever matmul precisions are listed.

A scheme row treats the matmul's A [M, K] as activations and B [K, N] as a Linear layer's weight: the weight
is quantized once, outside the timed region, and (for dynamic schemes) the activations inside it, on every
call, as in deployment. The unquantized layer is bf16, the dtype these schemes are deployed from: the "16"
of W8A16 and W4A16. Logical FLOPs stay those of the dense fp32 reference; rel_error is against fp64 on the
same unquantized operands.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

INSTALL = "pip install 'hwprof[quant]' (in a checkout: pip install -e '.[quant]')"
GROUP_SIZES = (32, 64, 128, 256)           # the group sizes torchao's int4 layouts accept


@dataclass(frozen=True)
class Scheme:
    name: str                  # canonical, e.g. "w4a16:g128"
    kind: str                  # w8a8 | w8a16 | w4a16 | fp8-row | fp8w
    group_size: int = 0
    compute_precision: str = "bf16"      # the arithmetic its matmul runs in (whose roof bounds it)
    description: str = ""

    def torchao_config(self):
        """The torchao config that realises this scheme (imports torchao; ImportError if it is missing)."""
        from torchao import quantization as q
        if self.kind == "w8a8":
            return q.Int8DynamicActivationInt8WeightConfig()
        if self.kind == "w8a16":
            return q.Int8WeightOnlyConfig()
        if self.kind == "w4a16":
            return q.Int4WeightOnlyConfig(group_size=self.group_size)
        if self.kind == "fp8-row":
            return q.Float8DynamicActivationFloat8WeightConfig(granularity=q.PerRow())
        return q.Float8WeightOnlyConfig()


_FIXED = {
    "w8a8": Scheme("w8a8", "w8a8", compute_precision="int8",
                   description="dynamic per-token int8 activations, int8 weights with per-channel scales"),
    "w8a16": Scheme("w8a16", "w8a16", description="int8 weight-only (per-channel scales), bf16 activations"),
    "fp8-row": Scheme("fp8-row", "fp8-row", compute_precision="fp8_e4m3",
                      description="fp8 e4m3 dynamic activations and weights, per-row scales"),
    "fp8w": Scheme("fp8w", "fp8w", description="fp8 e4m3 weight-only, bf16 activations"),
}
SCHEME_FORMS = ("w8a8", "w8a16", "w4a16:gG", "fp8-row", "fp8w")


def parse_scheme(text: str) -> Scheme | None:
    """The scheme a precision name denotes; None when it is not a scheme name at all; ValueError for a
    scheme name with a bad parameter."""
    text = str(text).strip()
    if text in _FIXED:
        return _FIXED[text]
    if not text.startswith("w4a16"):
        return None
    m = re.fullmatch(r"w4a16:g(\d+)", text)
    if not m:
        raise ValueError(f"scheme {text!r}: int4 weight-only needs its group size, e.g. w4a16:g128")
    group = int(m.group(1))
    if group not in GROUP_SIZES:
        raise ValueError(f"scheme {text!r}: group size must be one of {', '.join(map(str, GROUP_SIZES))}")
    return Scheme(text, "w4a16", group, description=f"int4 weight-only, groups of {group}, bf16 activations")


def _scheme_or_none(name: str) -> Scheme | None:
    try:
        return parse_scheme(name)
    except ValueError:
        return None


def is_scheme(name: str) -> bool:
    return _scheme_or_none(name) is not None


def compute_precision(name: str) -> str:
    """The plain precision whose arithmetic a precision or scheme name runs in."""
    scheme = _scheme_or_none(name)
    return scheme.compute_precision if scheme else name
