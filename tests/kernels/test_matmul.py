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
    with pytest.raises(Unsupported, match="divisible by 16"):
        build_case(MatmulSpec((24, 32, 32), "fp8_e4m3"), CPU)
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
