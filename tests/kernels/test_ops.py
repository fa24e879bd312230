"""The ops between a step's matmuls, measured alone: the same functions the decoder calls, no logical FLOPs,
their documented physical FLOPs and bytes, and an fp64 reference."""
import pytest
import torch

from hwprof import kernels
from hwprof.kernels.ops import OPS, PHYSICAL_PER_ELEMENT, OpSpec, rms_norm

SHAPES = {"rmsnorm": (64, 256), "layernorm": (64, 256), "silu_gate": (64, 688), "gelu": (64, 3072),
          "rotary": (1, 4, 64, 64, 2), "rotary_tables": (64, 64), "residual": (64, 256), "embedding": (64, 256, 4096),
          "kv_append": (1, 2, 64, 64), "merge_heads": (1, 4, 64, 64)}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_op_runs_and_matches_its_fp64_reference(op, precision):
    spec = OpSpec(op, SHAPES[op], precision)
    case, out = kernels.build_case(spec, torch.device("cpu"))
    assert case.logical_flops == 0 and spec.logical_flops == 0
    assert case.physical_flops == PHYSICAL_PER_ELEMENT[op] * spec.elements and case.bytes_moved > 0
    assert case.rel_error(out) < (1e-6 if precision == "fp32" else 2e-2)
    assert kernels.reference_of(spec) == OpSpec(op, SHAPES[op], "fp32")


def test_rmsnorm_is_computed_in_fp32_and_cast_back_as_transformers_does():
    x = torch.randn(4, 64, dtype=torch.bfloat16) * 100
    w = torch.ones(64, dtype=torch.bfloat16)
    want = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    assert torch.equal(rms_norm(x, w), w * want) and rms_norm(x, w).dtype == torch.bfloat16


def test_bad_op_specs_say_why():
    with pytest.raises(ValueError, match="unknown op"):
        OpSpec("softmax2", (4, 4), "fp32")
    with pytest.raises(ValueError, match="must be fp64, fp32, fp16 or bf16"):
        OpSpec("rmsnorm", (4, 4), "int8")
