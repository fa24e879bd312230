"""Build a case from a spec, probing once that torch can actually run it."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch

from hwprof.kernels.attention import build_attention
from hwprof.kernels.caches import cold_bytes
from hwprof.kernels.case import Case
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.linear import build_linear
from hwprof.kernels.matmul import build_matmul
from hwprof.kernels.ops import OpSpec, build_op
from hwprof.kernels.quantized import build_quantized
from hwprof.kernels.schemes import is_scheme
from hwprof.kernels.precision import PRECISIONS
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, Spec
from hwprof.kernels.step import StepSpec, build_step

# Phrases with which torch says "this combination has no kernel" (as opposed to a real failure).
_UNSUPPORTED_PHRASES = ("not implemented for", "no viable backend", "not supported", "only supports",
                        "no kernel", "no available kernel", "is not currently supported", "expected both",
                        # cuDNN attention refuses a graph only after dispatch, in its own words
                        "no execution plans support the graph")


def build_case(spec: Spec, device: torch.device, seed: int = 0, probe: bool = True,
               call: Callable[[Callable[[], Any]], Any] | None = None) -> tuple[Case, object]:
    """Return the case and the output of one probing call (which also serves as the first warm-up).

    A combination torch cannot run raises Unsupported with torch's own words; anything else propagates.
    `call(run)` makes the probing call when given (the runner times and traces it there); by default
    `run()`. `probe=False` builds a case known to run (again, in fresh memory) and returns no output, nor the
    costly extras (pruning_error) the first build computed for the same seed: its `extras` is empty.
    """
    if isinstance(spec, AttentionSpec):
        case = build_attention(spec, device, seed)
    elif isinstance(spec, OpSpec):
        case = build_op(spec, device, seed)
    elif isinstance(spec, StepSpec):
        case = build_step(spec, device, seed)
    elif is_scheme(spec.precision):
        case = build_quantized(spec, device, seed, first_call=probe)
    elif spec.kernel in ("linear", "conv1d"):
        case = build_linear(spec, device, seed)
    else:
        case = build_matmul(spec, device, seed, quality=probe)
    if not probe:
        return case, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with case.context():
                out = call(case.run) if call is not None else case.run()
        except (RuntimeError, NotImplementedError, ValueError) as e:
            if isinstance(e, torch.OutOfMemoryError) or not _looks_unsupported(str(e)):
                raise
            why = [str(w.message).splitlines()[0] for w in caught if "sparse" not in str(w.message).lower()]
            reason = str(e).splitlines()[0]
            if why:
                reason += " (" + "; ".join(dict.fromkeys(why)) + ")"
            raise Unsupported(f"torch cannot run {case.backend} for this case: {reason}") from None
    return case, out


def _looks_unsupported(message: str) -> bool:
    m = message.lower()
    return any(p in m for p in _UNSUPPORTED_PHRASES)


def estimate_bytes(spec: Spec, device: torch.device | None = None) -> int:
    """Peak memory a case needs on `device` (default: the CPU), estimated before allocating (inputs, fp32
    sources, fp64 reference, the weight copies a layer cycles through)."""
    if isinstance(spec, OpSpec):
        return 64 * 2**20 + 32 * (max(spec.elements, spec.shape[-1] * spec.shape[1] if spec.op == "embedding" else 0))
    if isinstance(spec, StepSpec):
        from hwprof.kernels.decoder import weight_bytes
        from hwprof.kernels.step import REFERENCE_FP64_BYTES
        fp32 = weight_bytes(spec.model, spec.layers, 4)
        logits = spec.tokens * spec.model.vocab * 8
        if spec.hollow:       # no reference model; the stubs' weights stay on the meta device (kernels.decoder)
            live = 2 * fp32 if spec.live_matmuls else weight_bytes(spec.model, 0, 4) if spec.live_ops else 0
            return live + 4 * logits + 64 * 2**20
        ref = weight_bytes(spec.model, spec.layers, 8)
        copies = cold_bytes(device) if spec.depth else 0          # a shallow step's layer copies (kernels.step)
        return 2 * fp32 + copies + (ref if ref <= REFERENCE_FP64_BYTES else fp32) + 4 * logits + 256 * 2**20
    if isinstance(spec, MatmulSpec) and spec.kernel in ("linear", "conv1d"):
        _, n, k = spec.shape
        return max(cold_bytes(device), 4 * n * k) + spec.element_count() * 16 + 64 * 2**20
    if isinstance(spec, MatmulSpec):
        b, m, n, k = spec.bmnk
        elem = PRECISIONS[spec.precision].element_bytes if spec.precision in PRECISIONS else 2   # schemes: bf16
        per_elem = elem + 4 + 8 + (8 if spec.sparsity.pattern != "dense" else 0)
        return spec.element_count() * per_elem * (2 if spec.pass_ == "fwd+bwd" else 1)
    b, h, sq, sk, d, _ = spec.dims
    elem = PRECISIONS[spec.precision].element_bytes
    passes = 2 if spec.pass_ == "fwd+bwd" else 1
    total = spec.element_count() * (elem + 4 + 8 + 16) * passes
    if spec.backend in ("math", "auto"):
        total += b * h * sq * sk * max(elem, 4) * (3 if passes == 2 else 2)   # materialised scores
    return total + 256 * 2**20                                                   # reference chunk
