import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from hwprof.kernels import Unsupported, build_case
from hwprof.kernels.attention import build_mask, reference_attention
from hwprof.kernels.spec import AttentionSpec

CPU = torch.device("cpu")


def test_window_mask_is_causal_band():
    m = build_mask("window:3", 6, 6, CPU)
    assert m.tolist()[5] == [False, False, False, True, True, True]
    assert m.tolist()[0] == [True, False, False, False, False, False]
    assert build_mask("causal", 4, 4, CPU) is None        # is_causal is used instead


@pytest.mark.parametrize("mask", ["none", "causal", "window:5"])
def test_chunked_fp64_reference_matches_torch_math(mask, monkeypatch):
    import hwprof.kernels.attention as att
    monkeypatch.setattr(att, "REFERENCE_CHUNK_BYTES", 2 * 3 * 16 * 8 * 3)   # force several query chunks
    q, k, v = (torch.randn(2, 3, 16, 8, dtype=torch.float64) for _ in range(3))
    allowed = {"none": None, "causal": torch.ones(16, 16, dtype=torch.bool).tril(),
               "window:5": build_mask("window:5", 16, 16, CPU)}[mask]
    with sdpa_kernel([SDPBackend.MATH]):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    (out,) = reference_attention(q, k, v, mask)
    assert torch.allclose(out, expected, atol=1e-12)


def test_reference_gradients_match_autograd_with_gqa():
    q = torch.randn(1, 4, 8, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 8, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 8, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(1, 4, 8, 4, dtype=torch.float64)
    with sdpa_kernel([SDPBackend.MATH]):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), g)
    ref = reference_attention(q.detach(), k.detach(), v.detach(), "causal", g)
    for a, b in zip(ref, [out, dq, dk, dv]):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("backend", ["math", "flash", "auto"])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_cpu_backends_run_and_are_accurate(backend, pass_):
    spec = AttentionSpec((1, 2, 64, 64, 16, 1), "fp32", "causal", backend, pass_)
    case, out = build_case(spec, CPU)
    if pass_ == "fwd+bwd":
        assert len(out) == 4 and out[2].shape == (1, 1, 64, 16)   # gradients measured, GQA-shaped
    assert case.rel_error(out) < 1e-5
    ran = "flash" if backend == "auto" else backend                  # torch picks flash on CPU here
    assert case.backend == (backend if backend != "auto" else "auto:flash")
    assert case.physical_flops == spec.physical_flops(ran)
    if ran == "flash":
        assert case.physical_flops < case.logical_flops                 # flash skips the masked blocks
    else:
        assert case.physical_flops == case.logical_flops                # math computes every pair


@pytest.mark.parametrize("backend", ["efficient", "cudnn"])
def test_cuda_only_backends_are_unsupported_on_cpu(backend):
    with pytest.raises(Unsupported, match="only on CUDA"):
        build_case(AttentionSpec((1, 1, 16, 16, 8), "fp32", "none", backend), CPU)


def test_bad_specs_are_rejected():
    for bad in [dict(shape=(1, 2, 3, 4)), dict(shape=(1, 3, 8, 8, 4, 2)), dict(precision="int8"),
                dict(mask="window:0"), dict(backend="xformers"), dict(pass_="bwd")]:
        kw = dict(shape=(1, 2, 8, 8, 4), precision="fp32") | bad
        with pytest.raises(ValueError):
            AttentionSpec(**kw)


def test_cudnn_refusal_after_dispatch_is_unsupported_not_error():
    # cuDNN SDPA raises this after dispatch when no plan fits the graph (torch/_C, cudnn frontend)
    from hwprof.kernels.build import _looks_unsupported
    assert _looks_unsupported("cuDNN Frontend error: [cudnn_frontend] Error: No execution plans support the graph.")
    assert not _looks_unsupported("CUDA error: an illegal memory access was encountered")
