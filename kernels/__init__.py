"""What hwprof measures: matmul and attention cases across precisions and sparsity patterns.

A case knows its logical and physical FLOPs, builds its inputs deterministically from a seed,
exposes a `run()` callable and computes its numerical error against an fp64 reference.
Nothing in this package knows about timers or energy meters.
"""
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, Spec, reference_of
from hwprof.kernels.case import Case
from hwprof.kernels.build import build_case

__all__ = ["AttentionSpec", "Case", "MatmulSpec", "Spec", "Unsupported", "build_case", "reference_of"]
