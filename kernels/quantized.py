"""Matmul cases for quantization schemes (kernels.schemes), realised with torchao's quantize_ on a Linear.

Activations x = A [M, K] in bf16; the Linear's weight is B [K, N] (stored [N, K], as nn.Linear does),
quantized once when the case is built. run() is the layer's forward: dynamic activation quantization, the
quantized matmul and any dequantization happen inside it, as in deployment.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import torch

from hwprof.kernels.case import Case, rel_error, stored_bytes
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.schemes import INSTALL, Scheme, parse_scheme
from hwprof.kernels.spec import MatmulSpec

# torchao refuses a scheme it has no kernel for in these ways (a missing optional package, a device check)
_REFUSALS = (ImportError, AssertionError, NotImplementedError)


@contextmanager
def _quiet_loggers(*names: str):
    """torchao logs a warning for each optional CUDA extension it cannot load, and torch one for each enum
    it registers; on a CPU machine that is noise on every run, not news."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def torchao_version() -> str | None:
    """torchao's version, importing it quietly; None when it is not installed."""
    try:
        with _quiet_loggers("torchao", "torch.utils._pytree"):
            import torchao
            import torchao.quantization  # noqa: F401  (the import that loads the extensions)
    except ImportError:
        return None
    return getattr(torchao, "__version__", "unknown")


def check_support(spec: MatmulSpec, scheme: Scheme) -> None:
    """Unsupported, before anything is allocated, for what a scheme row cannot be."""
    if spec.sparsity.pattern != "dense":
        raise Unsupported(f"{scheme.name} is measured dense: pruning and quantization schemes are not combined")
    if spec.pass_ != "fwd":
        raise Unsupported(f"{scheme.name} is an inference scheme; measure fwd")
    if len(spec.shape) == 4:
        raise Unsupported(f"{scheme.name} is measured 2-D only: [M, N, K] = M activation rows, a K x N weight")
    _, m, n, k = spec.bmnk
    if scheme.group_size and k % scheme.group_size:
        raise Unsupported(f"{scheme.name}: K = {k} is not a multiple of the group size {scheme.group_size}")
    if torchao_version() is None:
        raise Unsupported(f"quantization schemes need torchao, which is not installed: {INSTALL}")


def build_quantized(spec: MatmulSpec, device: torch.device, seed: int, first_call: bool = True) -> Case:
    """`first_call=False` for a case known to run (a rebuild): torchao refuses some schemes only at the first
    call, which is one whole call of the kernel (287 ms a pass for w8a8 [512, 1024, 1024] on an AVX2 EPYC)."""
    scheme = parse_scheme(spec.precision)
    check_support(spec, scheme)
    from torchao.quantization import quantize_
    _, m, n, k = spec.bmnk
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(m, k, generator=gen, device=device)           # the same operands as build_matmul draws
    bmat = torch.randn(k, n, generator=gen, device=device)
    linear = torch.nn.Linear(k, n, bias=False, device=device, dtype=torch.bfloat16).requires_grad_(False)
    linear.weight.copy_(bmat.t())
    x = a.to(torch.bfloat16)
    try:
        with _quiet_loggers("torchao", "torch.utils._pytree"):
            quantize_(linear, scheme.torchao_config())
            if first_call:
                linear(x)                                            # some refusals come at the first call
    except _REFUSALS as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Unsupported(f"torchao {torchao_version()} has no {scheme.name} kernel on {device.type} here: {why}") from None

    weight_bytes = stored_bytes(linear.weight)
    reference = lambda: a.double() @ bmat.double()                  # noqa: E731
    run = lambda: linear(x)                                          # noqa: E731
    if spec.kernel == "linear":           # a model's layer: its weight read cold, as in a step (kernels.linear)
        import copy
        import itertools

        from hwprof.kernels.caches import cold_bytes
        from hwprof.kernels.linear import copies_for
        layers = [linear] + [copy.deepcopy(linear) for _ in range(copies_for(weight_bytes, cold_bytes(device)) - 1)]
        order = itertools.cycle(layers)
        run = lambda: next(order)(x)                                 # noqa: E731
    return Case(spec=spec, run=run, logical_flops=spec.logical_flops,
                physical_flops=spec.logical_flops, density=1.0, backend="torchao",
                bytes_moved=m * k * 2 + weight_bytes + m * n * 2, error_fn=lambda out: rel_error(out, reference()),
                operands={"x": x, "weight": linear.weight}, weight_bytes=weight_bytes)
