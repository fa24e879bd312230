"""Quantization schemes: names, what cannot be combined, torchao present or not, error and weight bytes."""
import sys

import pytest
import torch

from hwprof.kernels.build import build_case
from hwprof.kernels.case import stored_bytes
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.schemes import INSTALL, compute_precision, is_scheme, parse_scheme
from hwprof.kernels.spec import MatmulSpec, SparsitySpec

CPU = torch.device("cpu")


def test_scheme_names_parse_to_their_kind_and_arithmetic():
    assert parse_scheme("w8a8").kind == "w8a8" and parse_scheme("w8a8").compute_precision == "int8"
    assert parse_scheme("w8a16").compute_precision == "bf16" and parse_scheme("fp8w").kind == "fp8w"
    assert parse_scheme("fp8-row").compute_precision == "fp8_e4m3"
    s = parse_scheme("w4a16:g128")
    assert (s.kind, s.group_size, s.name) == ("w4a16", 128, "w4a16:g128")
    assert parse_scheme("fp32") is None and parse_scheme("int8") is None
    assert is_scheme("w4a16:g32") and not is_scheme("w4a16:g100") and not is_scheme("bf16")
    assert compute_precision("w8a16") == "bf16" and compute_precision("fp64") == "fp64"


@pytest.mark.parametrize("bad,words", [("w4a16", "needs its group size"), ("w4a16:g100", "one of 32, 64, 128, 256"),
                                       ("w4a16:128", "needs its group size")])
def test_bad_scheme_parameters_are_refused_with_the_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        MatmulSpec((16, 256, 256), bad)


def test_an_unknown_name_lists_precisions_and_schemes():
    with pytest.raises(ValueError) as e:
        MatmulSpec((16, 256, 256), "w9a9")
    text = str(e.value)
    assert "fp32" in text and "w8a8, w8a16, w4a16:gG, fp8-row, fp8w" in text


def test_the_bad_name_in_a_suite_is_exit_2_with_the_list(tmp_path, capsys):
    from hwprof.presentation.cli import main
    suite = tmp_path / "s.toml"
    suite.write_text('[[matmul]]\nshapes = [[16, 256, 256]]\nprecisions = ["w8a4"]\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "w8a4" in err and "w4a16:gG" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("spec,words", [
    (MatmulSpec((16, 256, 256), "w8a8", SparsitySpec.parse("unstructured:0.5")), "not combined"),
    (MatmulSpec((16, 256, 256), "w8a16", pass_="fwd+bwd"), "measure fwd"),
    (MatmulSpec((2, 16, 256, 256), "fp8w"), "2-D only"),
    (MatmulSpec((16, 256, 200), "w4a16:g128"), "K = 200 is not a multiple of the group size 128"),
])
def test_what_a_scheme_row_cannot_be_is_unsupported_before_allocating(spec, words):
    with pytest.raises(Unsupported, match=words):
        build_case(spec, CPU)
    assert spec.backend == "torchao"


def test_without_torchao_scheme_rows_are_unsupported_with_the_install_command(monkeypatch):
    for name in [m for m in sys.modules if m == "torchao" or m.startswith("torchao.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchao", None)        # import torchao raises ImportError
    with pytest.raises(Unsupported) as e:
        build_case(MatmulSpec((16, 256, 256), "w8a8"), CPU)
    assert "torchao" in str(e.value) and INSTALL in str(e.value)
    case, _ = build_case(MatmulSpec((16, 256, 256), "fp32"), CPU)     # nothing else changes
    assert case.weight_bytes == 256 * 256 * 4


def test_weight_bytes_of_plain_and_sparse_weights():
    k, n = 128, 64

    def wb(precision, sparsity="dense"):
        return build_case(MatmulSpec((32, n, k), precision, SparsitySpec.parse(sparsity)), CPU)[0]
    assert wb("fp32").weight_bytes == k * n * 4 and wb("bf16").weight_bytes == k * n * 2
    assert wb("fp64").weight_bytes == k * n * 8
    assert wb("int8").weight_bytes == k * n + 4 and wb("fp8_e4m3").weight_bytes == k * n + 4   # + the fp32 scale
    csr = wb("fp32", "unstructured:0.25")
    a = csr.operands["a"]
    nnz = a.values().numel()
    assert csr.weight_bytes == nnz * 4 + nnz * 8 + (32 + 1) * 8          # values, column indices, row pointers
    bsr = wb("fp32", "block:16:0.5")
    blocks = bsr.operands["a"].values().shape[0]
    assert bsr.weight_bytes == blocks * 16 * 16 * 4 + blocks * 8 + (32 // 16 + 1) * 8
    assert stored_bytes(torch.zeros(3, 5, dtype=torch.float16)) == 30


needs_torchao = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchao") is None, reason="needs torchao (pip install -e '.[quant]')")


@needs_torchao
@pytest.mark.parametrize("scheme,low,high", [("w8a8", 1e-3, 0.03), ("w8a16", 1e-3, 0.02), ("fp8w", 5e-3, 0.06)])
def test_schemes_on_this_cpu_cost_a_bounded_error_and_a_quarter_of_the_weight(scheme, low, high):
    m, n, k = 16, 256, 512
    case, out = build_case(MatmulSpec((m, n, k), scheme), CPU)
    assert case.backend == "torchao" and out.shape == (m, n) and out.dtype == torch.bfloat16
    assert low < case.rel_error(out) < high            # quantized (not bf16's ~3e-3 alone), and not broken
    assert 0.25 <= case.weight_bytes / (k * n * 4) < 0.26          # int8 or fp8 data plus per-channel scales
    assert case.logical_flops == case.physical_flops == 2 * m * n * k
    assert case.bytes_moved == m * k * 2 + case.weight_bytes + m * n * 2
    fp32, _ = build_case(MatmulSpec((m, n, k), "fp32"), CPU)
    assert torch.equal(case.operands["x"], fp32.operands["a"].to(torch.bfloat16))   # the same operands


@needs_torchao
def test_a_scheme_torchao_has_no_cpu_kernel_for_is_unsupported_naming_what_is_missing():
    for scheme in ("w4a16:g128", "fp8-row"):
        try:
            build_case(MatmulSpec((16, 256, 256), scheme), CPU)
        except Unsupported as e:
            assert scheme in str(e) and "torchao" in str(e)


def test_a_rebuilt_scheme_case_is_quantized_again_without_a_call(monkeypatch):
    pytest.importorskip("torchao")
    calls = []
    real = torch.nn.Linear.forward
    monkeypatch.setattr(torch.nn.Linear, "forward", lambda self, x: calls.append(1) or real(self, x))
    spec = MatmulSpec((16, 64, 64), "w8a16", SparsitySpec("dense"))
    case, out = build_case(spec, torch.device("cpu"), 0)
    first = len(calls)
    assert first >= 2 and out is not None                    # torchao's refusal check, then the probing call
    again, none = build_case(spec, torch.device("cpu"), 0, probe=False)
    assert len(calls) == first and none is None                 # a rebuild: quantized again, not called
    assert torch.equal(again.run(), case.run())                 # the same seed, the same weights
