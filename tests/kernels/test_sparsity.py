import pytest
import torch

from hwprof.kernels import build_case
from hwprof.kernels.case import rel_error
from hwprof.kernels.sparsity import is_valid_2_4, kept_count, prune_2_4, prune_blocks, prune_unstructured
from hwprof.kernels.spec import MatmulSpec, SparsitySpec

CPU = torch.device("cpu")


@pytest.mark.parametrize("density", [0.5, 0.25, 0.1, 0.01, 0.013])
def test_unstructured_keeps_requested_count_of_largest_magnitudes(density):
    a = torch.randn(64, 96)
    pruned, achieved, nnz = prune_unstructured(a, density)
    assert int((pruned != 0).sum()) == nnz == kept_count(a.numel(), density)
    assert abs(nnz - density * a.numel()) <= 1                  # within one element
    assert achieved == pytest.approx(nnz / a.numel())
    kept = pruned[pruned != 0].abs()
    dropped = a[pruned == 0].abs()
    assert kept.min() >= dropped.max()                          # magnitude pruning
    assert torch.equal(pruned[pruned != 0], a[pruned != 0])     # kept values unchanged


def test_block_pruning_keeps_whole_blocks():
    a = torch.randn(64, 64)
    pruned, achieved, kept = prune_blocks(a, 16, 0.25)
    blocks = pruned.reshape(4, 16, 4, 16).permute(0, 2, 1, 3).reshape(16, -1)
    nonzero_blocks = (blocks != 0).any(dim=1)
    assert int(nonzero_blocks.sum()) == kept == 4
    assert achieved == 0.25
    assert bool(((blocks != 0).all(dim=1) | (blocks == 0).all(dim=1)).all())   # all or nothing per block


def test_2_4_mask_is_valid_and_keeps_two_largest():
    a = torch.randn(8, 32)
    pruned, density, nnz = prune_2_4(a)
    assert is_valid_2_4(pruned) and density == 0.5 and int((pruned != 0).sum()) == nnz == 8 * 16
    groups_a = a.reshape(8, 8, 4).abs()
    groups_p = pruned.reshape(8, 8, 4).abs()
    assert torch.equal(groups_p.sum(-1), groups_a.topk(2, dim=-1).values.sum(-1))


def test_physical_flops_and_pruning_error_of_sparse_cases():
    spec = MatmulSpec((64, 32, 128), "fp32", SparsitySpec.parse("unstructured:0.1"))
    case, out = build_case(spec, CPU)
    nnz = kept_count(64 * 128, 0.1)
    assert case.physical_flops == 2 * nnz * 32
    assert case.logical_flops == 2 * 64 * 32 * 128
    assert case.rel_error(out) < 1e-5                           # vs fp64 product of the *pruned* operands
    assert 0.3 < case.extras["pruning_error"] < 1.0             # pruning 90% of a Gaussian matrix costs a lot
    again, nothing = build_case(spec, CPU, probe=False)          # a rebuild: the first build has the extras
    assert again.extras == {} and nothing is None and again.physical_flops == case.physical_flops
    bspec = MatmulSpec((64, 32, 128), "fp32", SparsitySpec.parse("block:16:0.25"))
    bcase, _ = build_case(bspec, CPU)
    assert bcase.physical_flops == 2 * 8 * 16 * 16 * 32       # 32 blocks of 16x16, 8 kept


def test_rel_error_is_relative_frobenius():
    ref = torch.ones(4, 4, dtype=torch.float64)
    assert rel_error(ref * 1.01, ref) == pytest.approx(0.01)
    assert rel_error(ref, ref) == 0.0


def test_sparse_unsupported_on_cpu_with_reasons():
    from hwprof.kernels import Unsupported
    with pytest.raises(Unsupported, match="CUDA"):
        build_case(MatmulSpec((64, 64, 64), "fp16", SparsitySpec.parse("2:4")), CPU)
    with pytest.raises(Unsupported, match="CSR"):
        build_case(MatmulSpec((64, 64, 64), "int8", SparsitySpec.parse("unstructured:0.5")), CPU)
    with pytest.raises(Unsupported, match="divisible"):
        build_case(MatmulSpec((60, 64, 64), "fp32", SparsitySpec.parse("block:32:0.5")), CPU)
