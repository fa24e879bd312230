import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hwprof.kernels import flops
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec


def counted(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


@pytest.mark.parametrize("shape", [(64, 32, 16), (3, 64, 32, 16), (1, 7, 5, 3)])
def test_matmul_logical_flops_match_flop_counter(shape):
    spec = MatmulSpec(shape, "fp32")
    b, m, n, k = spec.bmnk
    a, bb = torch.randn(*shape[:-3], m, k), torch.randn(*shape[:-3], k, n)
    assert spec.logical_flops == 2 * b * m * n * k == counted(lambda: torch.matmul(a, bb))


def test_matmul_backward_is_twice_forward_like_flop_counter():
    spec = MatmulSpec((32, 16, 8), "fp32", pass_="fwd+bwd")
    a = torch.randn(32, 8, requires_grad=True)
    b = torch.randn(8, 16, requires_grad=True)
    assert spec.logical_flops == 3 * 2 * 32 * 16 * 8 == counted(lambda: (a @ b).sum().backward())


@pytest.mark.parametrize("mask", ["none", "causal", "window:8"])
def test_attention_forward_flops_match_flop_counter_and_ignore_the_mask(mask):
    spec = AttentionSpec((2, 3, 32, 32, 16), "fp32", mask, "math")
    q, k, v = (torch.randn(2, 3, 32, 16) for _ in range(3))

    def go():
        with sdpa_kernel([SDPBackend.MATH]):
            F.scaled_dot_product_attention(q, k, v)     # the dense reference: a mask does not change C

    assert spec.logical_flops == 4 * 2 * 3 * 32 * 32 * 16 == counted(go)


def test_attention_backward_flops_match_flop_counters_fused_sdpa_formula():
    """Backward = 2.5x forward: FlopCounterMode's formula for the fused SDPA backward (it recomputes the
    scores). The decomposed math backend is counted as 2x by FlopCounterMode, without that recomputation."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
    shape = (2, 3, 32, 16)
    spec = AttentionSpec((2, 3, 32, 32, 16), "fp32", "causal", "flash", "fwd+bwd")
    fwd = sdpa_flop_count(shape, shape, shape)
    assert spec.logical_flops == fwd + sdpa_backward_flop_count(shape, shape, shape, shape) == 3.5 * fwd


def test_attention_gqa_counts_query_heads():
    spec = AttentionSpec((1, 8, 16, 16, 4, 2), "fp32")
    assert spec.logical_flops == 4 * 1 * 8 * 16 * 16 * 4


def brute_pairs(mask: torch.Tensor) -> int:
    return int(mask.sum())


@pytest.mark.parametrize("sq,sk", [(1, 1), (7, 7), (16, 16), (5, 9), (9, 5), (128, 128)])
def test_causal_pairs_match_torch_is_causal_mask(sq, sk):
    mask = torch.ones(sq, sk, dtype=torch.bool).tril()    # torch's is_causal (top-left)
    assert flops.causal_pairs(sq, sk) == brute_pairs(mask)
    if sq == sk:
        assert flops.causal_pairs(sq, sk) == sq * (sq + 1) // 2     # FlashAttention's square convention


@pytest.mark.parametrize("sq,sk,w", [(16, 16, 4), (16, 16, 1), (16, 16, 100), (10, 20, 3), (20, 10, 3)])
def test_window_pairs_brute_force(sq, sk, w):
    i = torch.arange(sq).unsqueeze(1)
    j = torch.arange(sk).unsqueeze(0)
    assert flops.window_pairs(sq, sk, w) == brute_pairs((j <= i) & (j > i - w))


def test_physical_flops_per_pattern():
    assert flops.sparse_matmul_flops(nnz=10, n=4) == 80
    assert flops.block_sparse_matmul_flops(kept_blocks=3, bm=2, bk=2, n=5) == 2 * 3 * 4 * 5
    spec = AttentionSpec((1, 1, 4, 4, 2), "fp32", "causal")
    assert spec.physical_flops("flash") == 2 * 10 * (2 + 2)
    assert spec.density == pytest.approx(10 / 16)
    assert spec.physical_flops("flash") < spec.logical_flops


@pytest.mark.parametrize("mask,backend,pairs", [
    ("causal", "flash", 10), ("causal", "efficient", 10), ("causal", "cudnn", 10),
    ("causal", "math", 16),                        # math computes every pair, then masks
    ("window:2", "flash", 16), ("window:2", "math", 16),   # a boolean mask: no backend skips work
    ("none", "flash", 16),
])
def test_physical_attention_flops_are_the_work_the_backend_executes(mask, backend, pairs):
    spec = AttentionSpec((1, 1, 4, 4, 2), "fp32", mask, backend)
    assert flops.executed_pairs(mask, 4, 4, backend) == pairs
    assert spec.physical_flops(backend) == 2 * pairs * (2 + 2)
    assert spec.logical_flops == 2 * 16 * (2 + 2)                    # the mask never changes C


def test_pass_factor_rejects_unknown_pass():
    with pytest.raises(ValueError):
        flops.with_pass(10, "bwd", "matmul")


def test_sparsity_spec_parsing_and_column():
    assert SparsitySpec.parse("unstructured:0.1").column == "unstructured"
    assert str(SparsitySpec.parse("block:32:0.25")) == "block:32:0.25"
    assert SparsitySpec.parse("block:32:0.25").column == "block:32"
    assert SparsitySpec.parse("2:4").density == 0.5
    for bad in ["unstructured:0", "unstructured:1.5", "block:0:0.5", "block:32", "3:4", "sparse"]:
        with pytest.raises(ValueError):
            SparsitySpec.parse(bad)


def test_counts_are_exact_integers_with_their_batch():
    """FLOP counts are integers (a float would lose exactness past 2**53 and compare unequal to FlopCounterMode)."""
    assert flops.matmul_flops(2, 3, 4) == 48
    assert flops.sparse_matmul_flops(nnz=10, n=4, batch=2) == 160
    assert flops.block_sparse_matmul_flops(kept_blocks=3, bm=2, bk=2, n=5, batch=2) == 240
    for value in (flops.with_pass(10, "fwd+bwd", "attention"), flops.causal_pairs(5, 5), flops.causal_pairs(7, 4),
                  flops.mask_pairs("none", 3, 4), flops.executed_pairs("causal", 6, 6, "flash")):
        assert type(value) is int, value
    assert flops.with_pass(10, "fwd+bwd", "attention") == 35
    assert flops.causal_pairs(7, 4) == 4 * 5 // 2 + 3 * 4
    assert flops.mask_pairs("none", 3, 4) == 12


def test_unknown_pass_and_mask_are_named():
    with pytest.raises(ValueError, match="^unknown pass 'bwd'$"):
        flops.with_pass(10, "bwd", "matmul")
    with pytest.raises(ValueError, match="^unknown mask 'diag'$"):
        flops.mask_pairs("diag", 4, 4)
