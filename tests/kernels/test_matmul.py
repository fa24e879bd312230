import pytest
import torch

from hwprof.kernels import Unsupported, build_case
from hwprof.kernels.case import all_finite
from hwprof.kernels.spec import MatmulSpec

CPU = torch.device("cpu")


@pytest.mark.parametrize("precision,max_err", [("fp64", 1e-14), ("fp32", 1e-5), ("fp16", 5e-3), ("bf16", 2e-2),
                                               ("fp8_e4m3", 0.1), ("int8", 0.05)])
def test_each_precision_runs_and_its_error_is_in_its_range(precision, max_err):
    case, out = build_case(MatmulSpec((64, 48, 32), precision), CPU, seed=1)
    assert all_finite(out)
    err = case.rel_error(out)
    assert 0 <= err < max_err
    if precision not in ("fp64",):
        assert err > 0          # quantization costs something: the error is measured, not assumed


def test_inputs_are_deterministic_from_the_seed():
    c1, o1 = build_case(MatmulSpec((32, 32, 32), "fp32"), CPU, seed=7)
    c2, o2 = build_case(MatmulSpec((32, 32, 32), "fp32"), CPU, seed=7)
    c3, o3 = build_case(MatmulSpec((32, 32, 32), "fp32"), CPU, seed=8)
    assert torch.equal(o1, o2) and not torch.equal(o1, o3)


def test_tf32_is_unsupported_on_cpu_with_a_reason():
    with pytest.raises(Unsupported, match="tensor-core"):
        build_case(MatmulSpec((32, 32, 32), "tf32"), CPU)


def test_quantized_batched_and_shape_rules():
    with pytest.raises(Unsupported, match="2-D"):
        build_case(MatmulSpec((2, 32, 32, 32), "int8"), CPU)
    case, out = build_case(MatmulSpec((8, 40, 40), "fp8_e4m3"), CPU)     # the CPU kernel has no 16-rule
    assert out.shape == (8, 40) and case.rel_error(out) < 0.1
    with pytest.raises(Unsupported, match="autograd"):
        build_case(MatmulSpec((32, 32, 32), "int8", pass_="fwd+bwd"), CPU)


def test_fwd_bwd_returns_gradients_and_checks_them():
    case, out = build_case(MatmulSpec((2, 16, 8, 4), "fp32", pass_="fwd+bwd"), CPU)
    assert len(out) == 3 and out[1].shape == (2, 16, 4) and out[2].shape == (2, 4, 8)
    assert case.rel_error(out) < 1e-5
    wrong = (out[0], out[1] * 2, out[2])
    assert case.rel_error(wrong) > 0.5          # a wrong gradient is caught


def test_nan_output_is_detected():
    assert not all_finite(torch.tensor([1.0, float("nan")]))
    assert not all_finite((torch.ones(2), torch.tensor([float("inf")])))
    assert all_finite(torch.ones(2, dtype=torch.int32))


def test_fp8_2_4_is_unsupported_not_silently_dense():
    from hwprof.kernels.spec import SparsitySpec
    with pytest.raises(Unsupported, match="2:4 with fp8"):
        build_case(MatmulSpec((64, 64, 64), "fp8_e4m3", SparsitySpec.parse("2:4")), CPU)


# --- rules read from torch's sources and tests, checked with a fake CUDA capability -------------------

@pytest.fixture
def fake_cuda(monkeypatch):
    """A torch.device("cuda") whose capability the test chooses (no GPU needed for check_support)."""
    def set_cap(cap):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
        return torch.device("cuda", 0)
    return set_cap


def test_fp8_shape_rule_on_cuda_is_k_and_n_divisible_by_16_m_free(fake_cuda):
    from hwprof.kernels.matmul import check_support
    dev = fake_cuda((9, 0))
    check_support(MatmulSpec((24, 32, 32), "fp8_e4m3"), dev)           # M = 24 is fine (Blas.cpp checks K, N)
    with pytest.raises(Unsupported, match="K and N divisible by 16"):
        check_support(MatmulSpec((32, 32, 40), "fp8_e4m3"), dev)
    with pytest.raises(Unsupported, match="K and N divisible by 16"):
        check_support(MatmulSpec((32, 40, 32), "fp8_e4m3"), dev)
    with pytest.raises(Unsupported, match="sm_89"):
        check_support(MatmulSpec((32, 32, 32), "fp8_e4m3"), fake_cuda((8, 0)))


def test_fp32_2_4_is_unsupported_because_it_computes_in_tf32_and_tf32_2_4_is_allowed(fake_cuda):
    # torch/testing: "Inputs are converted to TF32 internally for sparse GEMM" (test_sparse_semi_structured.py)
    from hwprof.kernels.matmul import check_support
    from hwprof.kernels.spec import SparsitySpec, reference_of
    dev = fake_cuda((8, 0))
    with pytest.raises(Unsupported, match="TF32"):
        check_support(MatmulSpec((64, 64, 64), "fp32", SparsitySpec.parse("2:4")), dev)
    tf32_24 = MatmulSpec((64, 64, 64), "tf32", SparsitySpec.parse("2:4"))
    check_support(tf32_24, dev)
    assert reference_of(tf32_24).config_id == "matmul/64x64x64/fp32/dense/fwd"


class _FakeSemi:
    def __init__(self, backend):
        self.BACKEND = backend
        self.packed = torch.zeros(4)

    def values(self):
        return torch.zeros(2)

    def indices(self):
        return torch.zeros(1)


@pytest.mark.parametrize("backend", ["cusparselt", "cutlass"])
def test_int8_2_4_is_called_as_torch_tests_call_it(backend, monkeypatch):
    """torch's tests: int8 2:4 refuses a row-major B ("R/R -> R is not supported"), takes B column-major, and
    an int32 output (out_dtype) instead of int8, which would saturate."""
    from hwprof.kernels.matmul import column_major, int8_semi_structured_mm
    calls = []
    monkeypatch.setattr(torch, "_cslt_sparse_mm", lambda *a, **k: calls.append(("cslt", a, k)), raising=False)
    monkeypatch.setattr(torch, "_sparse_semi_structured_mm", lambda *a, **k: calls.append(("cutlass", a, k)),
                        raising=False)
    b = column_major(torch.randint(-5, 5, (64, 32), dtype=torch.int8))
    int8_semi_structured_mm(_FakeSemi(backend), b)()
    (name, args, kwargs), = calls
    assert name == ("cslt" if backend == "cusparselt" else "cutlass")
    dense = args[-1]
    assert dense is b and dense.stride() == (1, 64) and not dense.is_contiguous()     # column-major B
    assert kwargs["out_dtype"] is torch.int32


def test_dense_int8_and_fp8_pass_b_column_major():
    # cuBLASLt int8 tensor-core kernels want "TN" (B column-major); _scaled_mm requires it.
    for precision in ("int8", "fp8_e4m3"):
        case, _ = build_case(MatmulSpec((32, 48, 64), precision), CPU)
        b = case.operands["b"]
        assert b.shape == (64, 48) and b.stride() == (1, 64), precision


def test_scaled_mm_tuple_result_of_old_torch_is_unwrapped(monkeypatch):
    # torch < 2.5 returned (out, amax) from torch._scaled_mm
    real = torch._scaled_mm
    monkeypatch.setattr(torch, "_scaled_mm", lambda *a, **k: (real(*a, **k), torch.tensor(1.0)))
    case, out = build_case(MatmulSpec((32, 32, 32), "fp8_e4m3"), CPU)
    assert isinstance(out, torch.Tensor) and case.rel_error(out) < 0.1


def test_fp32_matmul_mode_uses_the_new_api_where_it_exists(monkeypatch):
    """torch >= 2.9: reading allow_tf32 after fp32_precision was set raises, so only the new API is used."""
    import types
    from hwprof.kernels.precision import fp32_matmul_mode

    class NewApi:
        fp32_precision = "none"

        @property
        def allow_tf32(self):
            raise RuntimeError("mix of the legacy and new APIs")

    new = NewApi()
    monkeypatch.setattr(torch.backends.cuda, "matmul", new)
    with fp32_matmul_mode(torch.device("cuda", 0), tf32=False):
        assert new.fp32_precision == "ieee"
    with fp32_matmul_mode(torch.device("cuda", 0), tf32=True):
        assert new.fp32_precision == "tf32"
    assert new.fp32_precision == "none"
    legacy = types.SimpleNamespace(allow_tf32=True)
    monkeypatch.setattr(torch.backends.cuda, "matmul", legacy)
    with fp32_matmul_mode(torch.device("cuda", 0), tf32=False):
        assert legacy.allow_tf32 is False
    assert legacy.allow_tf32 is True
