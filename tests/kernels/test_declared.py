"""A setting runs as declared: the operands each case exposes are the ones its run() really multiplies,
with the dtype and layout its precision and pattern promise (recorded at torch's dispatcher, so a case that
quietly computes fp16 in fp32, or CSR densely, fails here)."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hwprof.kernels import build_case
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec

CPU = torch.device("cpu")
MATMUL_OPS = ("aten.mm.", "aten.bmm.", "aten.addmm.", "aten._int_mm.", "aten._scaled_mm.", "aten.matmul.")


class Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((str(func), [a for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


def _matmul_calls(case):
    with case.context(), Recorder() as rec:
        case.run()
    return [(name, tensors) for name, tensors in rec.calls if name.startswith(MATMUL_OPS)]


DENSE = {"fp64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
         "int8": torch.int8, "fp8_e4m3": torch.float8_e4m3fn}


@pytest.mark.parametrize("precision", sorted(DENSE))
def test_dense_matmul_multiplies_operands_of_its_precision(precision):
    case, _ = build_case(MatmulSpec((32, 48, 64), precision), CPU)
    assert case.operands["a"].dtype == case.operands["b"].dtype == DENSE[precision]
    calls = _matmul_calls(case)
    assert calls, "no matmul was dispatched"
    for name, tensors in calls:
        assert [t.dtype for t in tensors[:2]] == [DENSE[precision]] * 2, name
    expected_op = {"int8": "aten._int_mm.", "fp8_e4m3": "aten._scaled_mm."}.get(precision, "aten.mm.")
    assert calls[0][0].startswith(expected_op)


@pytest.mark.parametrize("sparsity,layout", [("unstructured:0.1", torch.sparse_csr), ("block:16:0.25", torch.sparse_bsr)])
@pytest.mark.parametrize("precision", ["fp32", "fp64"])
def test_sparse_matmul_multiplies_the_sparse_format(sparsity, layout, precision):
    case, _ = build_case(MatmulSpec((64, 32, 64), precision, SparsitySpec.parse(sparsity)), CPU)
    assert case.operands["a"].layout == layout and case.operands["b"].layout == torch.strided
    (name, tensors), = _matmul_calls(case)
    assert tensors[0].layout == layout and tensors[0].dtype == DENSE[precision], name


def test_batched_and_fwd_bwd_matmul_keep_their_precision():
    case, _ = build_case(MatmulSpec((2, 16, 8, 4), "bf16", pass_="fwd+bwd"), CPU)
    calls = _matmul_calls(case)
    assert len(calls) >= 3                       # forward and both gradients
    assert all(t.dtype == torch.bfloat16 for _, ts in calls for t in ts[:2])


@pytest.mark.parametrize("backend,op", [("flash", "flash_attention"), ("math", "aten.bmm")])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_attention_runs_the_declared_backend_in_its_precision(backend, op, precision):
    case, _ = build_case(AttentionSpec((1, 2, 32, 32, 16), precision, "causal", backend), CPU)
    assert case.operands["q"].dtype == DENSE[precision]
    with case.context(), Recorder() as rec:
        case.run()
    hits = [(name, ts) for name, ts in rec.calls if op in name]
    assert hits, [n for n, _ in rec.calls][:10]
    if backend == "math" and precision != "fp32":
        # torch's CPU math backend upcasts 16-bit inputs and computes in fp32: the case must say so
        assert hits[0][1][0].dtype == torch.float32 and "upcast-fp32" in case.flags
    else:
        assert hits[0][1][0].dtype == DENSE[precision] and not case.flags


def test_errors_are_ordered_as_the_formats_say():
    """On the same operands: fp64 < fp32 < fp16 < bf16 (10, 23 and 52 mantissa bits vs bf16's 7)."""
    err = {p: build_case(MatmulSpec((128, 128, 128), p), CPU, seed=3) for p in ("fp64", "fp32", "fp16", "bf16")}
    e = {p: case.rel_error(out) for p, (case, out) in err.items()}
    assert e["fp64"] < e["fp32"] < e["fp16"] < e["bf16"], e
    assert e["fp32"] < 1e-5 and 1e-4 < e["fp16"] < 1e-2 and 1e-3 < e["bf16"] < 2e-2
